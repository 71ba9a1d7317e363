package emqxsim

import (
	"log"
	"os"
	"path/filepath"
)

// dataStore is a node's data directory, as far as the simulator needs it: the .evacuation file.
type dataStore interface {
	read() ([]byte, bool)
	write([]byte)
	remove()
}

func newDataStore(dir string) dataStore {
	if dir == "" {
		return &memData{}
	}
	return fileData{path: filepath.Join(dir, ".evacuation")}
}

// memData keeps the file in memory: it survives Restart with keepData, like a PVC.
type memData struct {
	b  []byte
	ok bool
}

func (m *memData) read() ([]byte, bool) { return m.b, m.ok }
func (m *memData) write(b []byte)       { m.b, m.ok = b, true }
func (m *memData) remove()              { m.b, m.ok = nil, false }

// fileData keeps the file on disk, at <data_dir>/.evacuation as EMQX does.
type fileData struct{ path string }

func (f fileData) read() ([]byte, bool) {
	b, err := os.ReadFile(f.path)
	return b, err == nil
}

func (f fileData) write(b []byte) {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		log.Printf("emqxsim: create data dir: %v", err)
		return
	}
	if err := os.WriteFile(f.path, b, 0o644); err != nil {
		log.Printf("emqxsim: write %s: %v", f.path, err)
	}
}

func (f fileData) remove() {
	if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
		log.Printf("emqxsim: remove %s: %v", f.path, err)
	}
}
