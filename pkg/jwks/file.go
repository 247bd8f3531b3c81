package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// DefaultFilePoll is how often a File checks its path for a change.
const DefaultFilePoll = 5 * time.Second

// FileOptions configure a File source.
type FileOptions struct {
	// Provider names the provider in logs.
	Provider string
	// Path of the JWKS document. Required.
	Path string
	// Algorithms is the provider's allowlist, for the per-key alg filter (J8).
	Algorithms []string
	// MaxBytes bounds the document like a fetch; default 524288.
	MaxBytes int64
	// Poll is the interval between checks of the file; default DefaultFilePoll.
	Poll time.Duration
	// After is the clock of the polls; default time.After. Tests inject a fake one.
	After func(time.Duration) <-chan time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// OnLoad, when set, is called after every read of the file, the first one included, with
	// Trigger "start" or "change" (metrics, readiness).
	OnLoad func(FetchResult)
}

// File is a local_jwks file re-read when it changes (J23): its size, modification time or
// identity (inode: a new file renamed into place, or a Kubernetes ConfigMap's symlink swap).
// Each read goes through Parse like a fetch (J7-J13); a read that yields no usable set (a bad or
// half-written file, the file gone) keeps the last good set. A file's keys never go stale.
type File struct {
	o    FileOptions
	set  atomic.Pointer[Set]
	seen fs.FileInfo // the file as last read (or found missing: nil); Run's goroutine only
	// missing remembers a failed Stat, so that a file that stays gone is reported once.
	missing bool
}

// NewFile reads the file once. The error is a configuration error: without a usable set at
// start the provider could never verify anything.
func NewFile(o FileOptions) (*File, error) {
	if o.Path == "" {
		return nil, errors.New("jwks: file source needs a path")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 512 << 10
	}
	if o.Poll <= 0 {
		o.Poll = DefaultFilePoll
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &File{o: o}
	if err := f.load("start"); err != nil {
		return nil, err
	}
	return f, nil
}

// Current returns the last good set.
func (f *File) Current() (*Set, error) {
	if s := f.set.Load(); s != nil {
		return s, nil
	}
	return nil, ErrKeysUnavailable
}

// RefreshForKID always refuses: a token never causes a read, the poll picks up changes.
func (f *File) RefreshForKID(context.Context) (*Set, error) {
	return nil, fmt.Errorf("%w: a local file is re-read when it changes, not on demand", ErrRefreshRefused)
}

// Ready reports whether a set is loaded (always, once NewFile succeeded).
func (f *File) Ready() bool { return f.set.Load() != nil }

// Run polls the file every Poll until ctx ends, and reads it again when it changed.
func (f *File) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.o.After(f.o.Poll):
		}
		f.poll()
	}
}

// poll reads the file again if it is not the one last read.
func (f *File) poll() {
	fi, err := os.Stat(f.o.Path) // follows symlinks: a swapped link target is a change
	if err != nil {
		if !f.missing {
			f.missing = true
			f.report("change", fmt.Errorf("jwks: %w", err), nil)
		}
		return
	}
	f.missing = false
	if f.seen != nil && os.SameFile(f.seen, fi) && fi.ModTime().Equal(f.seen.ModTime()) && fi.Size() == f.seen.Size() {
		return
	}
	_ = f.load("change")
}

// load reads and parses the file, installs the set on success, and reports either way.
func (f *File) load(trigger string) error {
	set, skips, fi, err := f.read()
	if fi != nil {
		// Remembered even when the content is bad: the next change is what deserves a look.
		f.seen = fi
	}
	if err == nil {
		f.set.Store(set)
	}
	f.report(trigger, err, skips)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, f.o.Path)
	}
	return nil
}

func (f *File) read() (*Set, []Skip, fs.FileInfo, error) {
	fh, err := os.Open(f.o.Path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("jwks: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat() // the file actually opened, whatever the path points at by now
	if err != nil {
		return nil, nil, nil, fmt.Errorf("jwks: %w", err)
	}
	doc, err := io.ReadAll(io.LimitReader(fh, f.o.MaxBytes+1))
	if err != nil {
		return nil, nil, fi, fmt.Errorf("jwks: reading %s: %w", f.o.Path, err)
	}
	if int64(len(doc)) > f.o.MaxBytes {
		return nil, nil, fi, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadDocument, f.o.Path, f.o.MaxBytes)
	}
	set, skips, err := Parse(doc, f.o.Algorithms)
	return set, skips, fi, err
}

func (f *File) report(trigger string, err error, skips []Skip) {
	log := f.o.Logger.With("provider", f.o.Provider, "file", f.o.Path, "trigger", trigger)
	res := FetchResult{Provider: f.o.Provider, Err: err, Skipped: skips, Trigger: trigger, URI: f.o.Path}
	switch {
	case err != nil && trigger == "start":
		// NewFile's caller reports it as a configuration error.
	case err != nil:
		log.Warn("local jwks file unusable; keeping the last good keys", "error", err.Error())
	default:
		res.Keys = f.set.Load().Len()
		log.Info("local jwks file loaded", "keys", res.Keys, "skipped", len(skips))
	}
	for _, s := range skips {
		lvl := slog.LevelWarn
		if s.Reason == SkipPrivate {
			lvl = slog.LevelError
		}
		log.Log(context.Background(), lvl, "jwks key skipped", "index", s.Index, "kid", s.KID, "reason", s.Reason, "detail", s.Detail)
	}
	if f.o.OnLoad != nil {
		f.o.OnLoad(res)
	}
}
