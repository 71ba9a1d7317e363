#!/usr/bin/env bash
# Release artifacts: kubectl-emqx for linux, darwin and windows on amd64 and arm64, emqx-webhook
# for linux; archives with LICENSE, README and the completion script; sha256 sums; the krew
# manifest rendered from krew/emqx.yaml for these archives; the webhook's install stamped with this
# version: emqx-webhook.yaml (manifests/ rendered) and the Helm chart packaged
# (emqx-webhook-<version>.tgz), both deploying the image of this version, by digest when
# IMAGE_DIGEST (sha256:…) is given, as the release workflow does once the image is pushed.
#
# Usage: hack/dist.sh [VERSION]   (default: git describe); output in $DIST_DIR (default dist/)
# IMAGE: the webhook image's repository (default ghcr.io/kubectl-emqx/emqx-webhook).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${1:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}
dist=${DIST_DIR:-$root/dist}
# Archives are fetched by krew from the release page of this tag.
base_url=${RELEASE_URL:-https://github.com/kubectl-emqx/kubectl-emqx/releases/download/$version}
ldflags="-s -w -X github.com/kubectl-emqx/kubectl-emqx/pkg/version.Version=$version"

rm -rf "$dist"
mkdir -p "$dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { # build OS ARCH CMD → path of the binary
	local os=$1 arch=$2 cmd=$3 ext=
	[[ $os == windows ]] && ext=.exe
	local out="$work/$cmd-$os-$arch/$cmd$ext"
	echo "dist: building $cmd for $os/$arch" >&2
	(cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$out" "./cmd/$cmd")
	echo "$out"
}

archive() { # archive NAME DIR → writes dist/NAME(.tar.gz|.zip) from the files in DIR
	local name=$1 dir=$2
	cp "$root/LICENSE" "$root/README.md" "$dir/"
	if [[ $name == *windows* ]]; then
		(cd "$dir" && zip -q -X -r "$dist/$name.zip" .)
	else
		tar -C "$dir" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -czf "$dist/$name.tar.gz" .
	fi
}

for os in linux darwin windows; do
	for arch in amd64 arm64; do
		bin=$(build "$os" "$arch" kubectl-emqx)
		dir=$(dirname "$bin")
		[[ $os == windows ]] || cp "$root/krew/kubectl_complete-emqx" "$dir/"
		archive "kubectl-emqx_${version}_${os}_${arch}" "$dir"
	done
done
for arch in amd64 arm64; do
	bin=$(build linux "$arch" emqx-webhook)
	archive "emqx-webhook_${version}_linux_${arch}" "$(dirname "$bin")"
done

# The webhook's install, stamped: a copy of manifests/ (symlinks resolved) with the image of this
# version instead of :latest. The chart's version is the tag without its v (semver), or
# 0.0.0-<version> for a build that is not a release.
image=${IMAGE:-ghcr.io/kubectl-emqx/emqx-webhook}
digest=${IMAGE_DIGEST:-}
[[ -z $digest || $digest =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "dist: IMAGE_DIGEST must be sha256:<64 hex digits>, not $digest" >&2; exit 1; }
chart_version=${version#v}
[[ $chart_version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || chart_version=0.0.0-$version
stage=$work/manifests
cp -rL "$root/manifests" "$stage"
sed -i -e "s|^  newName: .*|  newName: $image|" -e "s|^  newTag: latest$|  newTag: $version|" "$stage/base/kustomization.yaml"
[[ -z $digest ]] || printf '  digest: %s\n' "$digest" >>"$stage/base/kustomization.yaml"
sed -i -e "s|^version: .*|version: $chart_version|" -e "s|^appVersion: .*|appVersion: \"$version\"|" "$stage/helm/emqx-webhook/Chart.yaml"
sed -i -e "s|^  repository: .*|  repository: $image|" -e "s|^  tag: latest$|  tag: \"$version\"|" -e "s|^  digest: \"\"$|  digest: \"$digest\"|" \
	"$stage/helm/emqx-webhook/values.yaml"
kubectl=${KUBECTL:-$(command -v kubectl || true)}
[[ -n $kubectl ]] || { echo "dist: kubectl is needed to render the install (kubectl kustomize); set KUBECTL or put it on PATH" >&2; exit 1; }
"$kubectl" kustomize "$stage" >"$dist/emqx-webhook.yaml"
"$("$root/hack/tools.sh")/helm" package "$stage/helm/emqx-webhook" -d "$dist" >/dev/null
if grep -q ':latest' "$dist/emqx-webhook.yaml"; then
	echo "dist: the rendered install still deploys :latest" >&2
	exit 1
fi

(cd "$dist" && sha256sum -- *.tar.gz *.zip emqx-webhook.yaml emqx-webhook-*.tgz >checksums.txt)

# The krew manifest: the template with version, URIs and checksums filled in.
manifest=$(<"$root/krew/emqx.yaml")
manifest=${manifest//'{{ .TagName }}'/$version}
manifest=${manifest//'{{ .BaseURL }}'/$base_url}
for os in linux darwin windows; do
	for arch in amd64 arm64; do
		ext=tar.gz
		[[ $os == windows ]] && ext=zip
		sum=$(sha256sum "$dist/kubectl-emqx_${version}_${os}_${arch}.$ext" | cut -d' ' -f1)
		manifest=${manifest//"{{ sha256 \"${os}_${arch}\" }}"/$sum}
	done
done
printf '%s\n' "$manifest" >"$dist/emqx.yaml"
echo "dist: artifacts for $version in $dist" >&2
ls -1 "$dist"
