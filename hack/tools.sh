#!/usr/bin/env bash
# Builds the pinned tools of hack/tools/go.mod (helm, ct, crane, actionlint) once, and caches them outside the
# work tree in a directory keyed by that module's go.mod and go.sum. Prints the binary directory.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dir=$CACHE_ROOT/tools/$(cat "$HACK_DIR/tools/go.mod" "$HACK_DIR/tools/go.sum" | sha256sum | cut -c1-16)
build() {
	rm -rf "$dir/bin.partial"
	(cd "$HACK_DIR/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/bin.partial/" tool)
	rm -rf "$dir/bin"
	mv "$dir/bin.partial" "$dir/bin"
}
cached_build "$dir" "helm, ct, crane and actionlint" build
echo "$dir/bin"
