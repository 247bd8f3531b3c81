package jwks

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type testFile struct {
	*File
	loads chan FetchResult
	clk   *fakeClock
	path  string
	log   *syncWriter
}

// newTestFile writes body to a fresh file and builds a File on it with the fake clock.
func newTestFile(t *testing.T, body []byte) (*testFile, error) {
	t.Helper()
	tf := &testFile{loads: make(chan FetchResult, 64), clk: newFakeClock(), path: filepath.Join(t.TempDir(), "jwks.json"), log: &syncWriter{}}
	if body != nil {
		writeFile(t, tf.path, body)
	}
	f, err := NewFile(FileOptions{
		Provider: "local", Path: tf.path, Algorithms: testAlgs, Poll: time.Second, After: tf.clk.After,
		Logger: slog.New(slog.NewJSONHandler(tf.log, nil)),
		OnLoad: func(res FetchResult) { tf.loads <- res },
	})
	tf.File = f
	return tf, err
}

// run starts Run and stops it when the test ends.
func (f *testFile) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// tick lets one poll happen: waits for Run to park on its timer, fires it, and waits for Run to
// park again (the poll is done).
func (f *testFile) tick(t *testing.T) {
	t.Helper()
	f.clk.waitPending(t, time.Second, 1)
	f.clk.Advance(time.Second)
	f.clk.waitPending(t, time.Second, 1)
}

func (f *testFile) noLoad(t *testing.T) {
	t.Helper()
	select {
	case res := <-f.loads:
		t.Fatalf("unexpected read: %+v", res)
	default:
	}
}

func (f *testFile) nextLoad(t *testing.T) FetchResult {
	t.Helper()
	select {
	case res := <-f.loads:
		return res
	default:
		t.Fatal("the file was not read")
	}
	return FetchResult{}
}

func writeFile(t *testing.T, path string, body []byte) {
	t.Helper()
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replace writes body next to path and renames it into place (a new inode), as config management
// tools and editors do.
func replace(t *testing.T, path string, body []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, body)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func mustKIDs(t *testing.T, f *File, kids ...string) {
	t.Helper()
	set, err := f.Current()
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != len(kids) {
		t.Fatalf("%d keys, want %v", set.Len(), kids)
	}
	for _, k := range kids {
		if len(set.Lookup(k)) != 1 {
			t.Fatalf("kid %q missing", k)
		}
	}
}

// TestFileReload (J23): a local_jwks file is re-read when it changes: written in place, renamed
// into place (same size, new inode), or swapped behind a symlink as Kubernetes does with a
// ConfigMap. An unchanged file is not read again.
func TestFileReload(t *testing.T) {
	f, err := newTestFile(t, kidDoc(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if res := f.nextLoad(t); res.Err != nil || res.Trigger != "start" || res.Keys != 1 || res.Result() != ResultOK {
		t.Fatalf("first read %+v", res)
	}
	if !f.Ready() {
		t.Fatal("not ready")
	}
	if _, err := f.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("RefreshForKID: %v", err)
	}
	f.run(t)

	f.tick(t)
	f.noLoad(t)

	// In place, another size.
	writeFile(t, f.path, kidDoc(t, "a", "b"))
	f.tick(t)
	if res := f.nextLoad(t); res.Err != nil || res.Trigger != "change" || res.Keys != 2 {
		t.Fatalf("in-place write: %+v", res)
	}
	mustKIDs(t, f.File, "a", "b")
	f.tick(t)
	f.noLoad(t)

	// Renamed into place with the same size and (possibly) the same mtime: the inode differs.
	same := kidDoc(t, "a", "c")
	if len(same) != len(kidDoc(t, "a", "b")) {
		t.Fatal("test documents differ in size")
	}
	st, _ := os.Stat(f.path)
	replace(t, f.path, same)
	_ = os.Chtimes(f.path, st.ModTime(), st.ModTime())
	f.tick(t)
	if res := f.nextLoad(t); res.Err != nil || res.Keys != 2 {
		t.Fatalf("rename into place: %+v", res)
	}
	mustKIDs(t, f.File, "a", "c")

	// Behind a symlink swap (ConfigMap: path -> ..data/jwks.json, ..data -> a timestamped dir).
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "v1", "jwks.json"), kidDoc(t, "d"))
	writeFile(t, filepath.Join(dir, "v2", "jwks.json"), kidDoc(t, "e"))
	if err := os.Symlink("v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "..data", "jwks.json"), f.path+".link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.path+".link", f.path); err != nil {
		t.Fatal(err)
	}
	f.tick(t)
	f.nextLoad(t)
	mustKIDs(t, f.File, "d")
	if err := os.Symlink("v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	f.tick(t)
	if res := f.nextLoad(t); res.Err != nil {
		t.Fatalf("symlink swap: %+v", res)
	}
	mustKIDs(t, f.File, "e")
}

// TestFileBadWriteKeepsSet (J12, J23): a file that stops parsing (half written, emptied, keys
// unusable) or disappears keeps the last good set; each bad version is reported once, as an
// error, and logged; the next good version is installed.
func TestFileBadWriteKeepsSet(t *testing.T) {
	f, err := newTestFile(t, kidDoc(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	f.nextLoad(t)
	good, _ := f.Current()
	f.run(t)
	k := tk(t)
	bad := []struct {
		name    string
		body    []byte
		wantErr error
	}{
		{"half written", kidDoc(t, "a", "b")[:40], ErrBadDocument},
		{"empty", []byte{}, ErrBadDocument},
		{"no usable key", doc(t, jwk(t, k.rsa1024.Public(), "small", "")), ErrNoUsableKey},
		{"too large", append(kidDoc(t, "a"), make([]byte, 512<<10)...), ErrBadDocument},
	}
	for _, tc := range bad {
		writeFile(t, f.path, tc.body)
		f.tick(t)
		res := f.nextLoad(t)
		if !errors.Is(res.Err, tc.wantErr) || res.Result() != ResultError {
			t.Fatalf("%s: %+v, want %v", tc.name, res, tc.wantErr)
		}
		if set, err := f.Current(); err != nil || set != good {
			t.Fatalf("%s: the last good set was replaced", tc.name)
		}
		f.tick(t)
		f.noLoad(t) // reported once per version
	}
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	f.tick(t)
	if res := f.nextLoad(t); !errors.Is(res.Err, os.ErrNotExist) {
		t.Fatalf("removed: %+v", res)
	}
	f.tick(t)
	f.noLoad(t)
	if set, err := f.Current(); err != nil || set != good || !f.Ready() {
		t.Fatal("the last good set was dropped with the file")
	}
	writeFile(t, f.path, kidDoc(t, "z"))
	f.tick(t)
	if res := f.nextLoad(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustKIDs(t, f.File, "z")
	warns := 0
	for _, l := range f.log.lines(t) {
		if l["msg"] == "local jwks file unusable; keeping the last good keys" && l["level"] == "WARN" {
			warns++
		}
	}
	if warns != len(bad)+1 {
		t.Fatalf("%d warnings logged, want %d", warns, len(bad)+1)
	}
}

// TestFileStart: without a usable set at start, NewFile fails (a configuration error).
func TestFileStart(t *testing.T) {
	if _, err := newTestFile(t, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := newTestFile(t, []byte(`{"keys":[]}`)); !errors.Is(err, ErrNoUsableKey) {
		t.Fatalf("empty set: %v", err)
	}
	if _, err := NewFile(FileOptions{}); err == nil {
		t.Fatal("no path accepted")
	}
}
