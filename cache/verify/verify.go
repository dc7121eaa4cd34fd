// Package verify verifies a binary cache against the rules Nix relies
// on (every narinfo parses, names an existing NAR of the right size and
// hash, is signed by a trusted key, and has every reference in the cache)
// and plans the repair of what it finds broken.
package verify

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/retry"
)

// Options say what Verify checks.
type Options struct {
	// Paths, when set, limits Verify to the closures of these store paths,
	// read through Get and Exists (for caches that cannot list). NAR sizes
	// are then checked only with Full, and orphans are not looked for.
	Paths []string
	// TrustedKeys are public keys in Nix's format ("name:base64"). Each
	// narinfo needs a signature verifying with one of them; with none
	// given, a narinfo only needs some signature.
	TrustedKeys []string
	// Full downloads every NAR, checks FileHash and FileSize, decompresses
	// it and checks NarHash and NarSize.
	Full bool
	// Jobs bounds narinfo reads in flight (default 64): a remote cache
	// answers in tens of milliseconds, so latency, not bandwidth, decides.
	Jobs int
	// FullJobs bounds NAR downloads in flight with Full (default 4); each
	// holds a decompressor's window in memory.
	FullJobs int
	// Progress, when set, is called after each narinfo checked with the
	// count done and the count known so far; from one goroutine at a time.
	Progress func(done, total int)
	// Realisations are the local store's, by output path: each whose
	// output the cache holds (in the verified closures, with Paths) must
	// be there in every format clients read, or it is a
	// MissingRealisation. nil: not checked.
	Realisations map[string][]nixstore.Realisation
}

// Run reads the cache and reports every inconsistency it finds. The
// error is for a verification that could not finish (the cache cannot be
// listed or read, a trusted key is malformed, ctx ended); what is wrong
// with the cache is in the Report.
func Run(ctx context.Context, c cache.Cache, opts Options) (Report, error) {
	v := &verifier{
		cache:   c,
		opts:    opts,
		missing: map[string]*missingRef{},
	}
	v.report.Cache = c.String()
	for _, k := range opts.TrustedKeys {
		pub, err := signature.ParsePublicKey(strings.TrimSpace(k))
		if err != nil {
			return Report{}, fmt.Errorf("trusted key %q is not a Nix public key (want NAME:BASE64)", k)
		}
		v.keys = append(v.keys, pub)
	}
	if v.opts.Jobs < 1 {
		v.opts.Jobs = 64
	}
	if v.opts.FullJobs < 1 {
		v.opts.FullJobs = 4
	}
	v.fullJobs = semaphore.NewWeighted(int64(v.opts.FullJobs))
	var err error
	if len(opts.Paths) > 0 {
		v.found = map[string]bool{}
		err = v.closures(ctx)
	} else {
		err = v.all(ctx)
	}
	if err == nil && opts.Realisations != nil {
		err = v.checkLocalRealisations(ctx, v.listedRealisations)
	}
	if err != nil {
		return Report{}, err
	}
	if err := v.confirmMissing(ctx); err != nil {
		return Report{}, err
	}
	v.reportMissing()
	v.report.sort()
	return v.report, nil
}

type verifier struct {
	cache    cache.Cache
	opts     Options
	keys     []signature.PublicKey
	fullJobs *semaphore.Weighted

	// Set once by the listing (whole-cache mode), read-only afterwards
	// (but for each NAR's referenced flag). What is kept per narinfo is
	// its key and per NAR its key and size, never a narinfo's text: the
	// memory of a whole-cache verify is about 150 bytes an object.
	listed             bool
	narinfos           map[string]struct{}   // keys of listed narinfos
	nars               map[string]*narObject // listed objects under nar/, by key
	listedRealisations map[string]bool
	found              map[string]bool // narinfo keys read (closures mode)

	mu      sync.Mutex
	report  Report
	missing map[string]*missingRef // missing reference narinfos, by key
	done    int
	total   int
}

// narObject is a listed NAR object.
type narObject struct {
	size       int64
	referenced atomic.Bool // a narinfo points to it
}

// missingRef is a reference whose narinfo is missing.
type missingRef struct {
	path      string
	referrer  string // the first referrer found
	referrers int
	asked     bool // a path Options.Paths names, not a reference
}

// all verifies the whole cache: one listing, then every narinfo.
func (v *verifier) all(ctx context.Context) error {
	v.listed = true
	v.narinfos = map[string]struct{}{}
	v.nars = map[string]*narObject{}
	var realisations []string
	v.listedRealisations = map[string]bool{}
	err := v.cache.List(ctx, "", func(o cache.Object) error {
		switch {
		case isRealisationKey(o.Key):
			realisations = append(realisations, o.Key)
			v.listedRealisations[o.Key] = true
		case strings.HasSuffix(o.Key, ".narinfo") && !strings.Contains(o.Key, "/"):
			v.narinfos[o.Key] = struct{}{}
		case strings.HasPrefix(o.Key, "nar/"):
			v.nars[o.Key] = &narObject{size: o.Size}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", v.cache, err)
	}
	v.report.NARs = len(v.nars)
	v.total = len(v.narinfos)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.opts.Jobs)
	for key := range v.narinfos {
		g.Go(func() error {
			self, refs, err := v.check(gctx, key)
			if errors.Is(err, cache.ErrNotFound) {
				return nil // deleted since the listing: nothing to verify
			}
			if err != nil {
				return err
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			for _, ref := range refs {
				if _, ok := v.narinfos[cache.NarInfoKeyOfRef(ref)]; !ok {
					v.noteMissing(ref, self, false)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := v.checkRealisations(ctx, realisations); err != nil {
		return err
	}
	for key, o := range v.nars {
		if !o.referenced.Load() {
			v.report.add(Problem{Kind: OrphanNAR, Key: key, Detail: fmt.Sprintf("%d bytes that no narinfo points to", o.size)})
		}
	}
	return nil
}

// closures verifies the closures of Options.Paths, breadth first: each
// level's narinfos are read concurrently and their references unseen so
// far make the next level.
func (v *verifier) closures(ctx context.Context) error {
	type item struct{ path, referrer string }
	var level []item
	seen := map[string]bool{}
	for _, p := range v.opts.Paths {
		p = cache.StorePathOfRef(p)
		if !seen[p] {
			seen[p] = true
			level = append(level, item{path: p})
		}
	}
	for len(level) > 0 {
		v.mu.Lock()
		v.total += len(level)
		v.mu.Unlock()
		var next []item
		var nextMu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(v.opts.Jobs)
		for _, it := range level {
			g.Go(func() error {
				key := cache.NarInfoKey(it.path)
				_, refs, err := v.check(gctx, key)
				if errors.Is(err, cache.ErrNotFound) {
					v.mu.Lock()
					v.noteMissing(it.path, it.referrer, it.referrer == "")
					v.mu.Unlock()
					return nil
				}
				if err != nil {
					return err
				}
				v.mu.Lock()
				v.found[key] = true
				v.mu.Unlock()
				nextMu.Lock()
				defer nextMu.Unlock()
				for _, ref := range refs {
					if p := cache.StorePathOfRef(ref); !seen[p] {
						seen[p] = true
						next = append(next, item{path: p, referrer: it.path})
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		level = next
	}
	return nil
}

// noteMissing records a missing narinfo; v.mu must be held.
func (v *verifier) noteMissing(ref, referrer string, asked bool) {
	key := cache.NarInfoKeyOfRef(ref)
	m := v.missing[key]
	if m == nil {
		// Copied: a substring would keep the referrer's narinfo text.
		m = &missingRef{path: cache.StorePathOfRef(ref), referrer: strings.Clone(referrer)}
		v.missing[key] = m
	}
	m.asked = m.asked || asked
	if referrer != "" {
		m.referrers++
	}
}

// reportMissing turns the missing narinfos into problems, one per path.
func (v *verifier) reportMissing() {
	for key, m := range v.missing {
		p := Problem{Kind: MissingReference, Key: key, Path: m.path}
		switch {
		case m.asked:
			p.Kind, p.Detail = MissingPath, "not in the cache"
		case m.referrers > 1:
			p.Detail = fmt.Sprintf("referenced by %s and %d more", m.referrer, m.referrers-1)
		default:
			p.Detail = "referenced by " + m.referrer
		}
		v.report.add(p)
	}
}

// check verifies one narinfo and its NAR, and returns its store path and
// references (base names, itself excluded). A missing narinfo is
// cache.ErrNotFound.
func (v *verifier) check(ctx context.Context, key string) (string, []string, error) {
	ni, err := cache.ReadNarInfo(ctx, v.cache, key)
	var perr *cache.ParseError
	if errors.As(err, &perr) {
		v.finish(Problem{Kind: BadNarInfo, Key: key, Path: perr.StorePath, Detail: perr.Err.Error()})
		return perr.StorePath, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	problems, err := v.checkNAR(ctx, key, ni)
	if err != nil {
		return "", nil, err
	}
	if p, ok := v.checkSignatures(key, ni); !ok {
		problems = append(problems, p)
	}
	v.finish(problems...)
	self := path.Base(ni.StorePath)
	return ni.StorePath, slices.DeleteFunc(ni.References, func(r string) bool { return r == self }), nil
}

// finish records a checked narinfo's problems and reports progress.
func (v *verifier) finish(problems ...Problem) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.report.NarInfos++
	for _, p := range problems {
		v.report.add(p)
	}
	v.done++
	if v.opts.Progress != nil {
		v.opts.Progress(v.done, v.total)
	}
}

// checkNAR checks that the narinfo's NAR exists with the size it says
// (the listing's size, or Exists without one), and with Full its content.
func (v *verifier) checkNAR(ctx context.Context, key string, ni *narinfo.NarInfo) ([]Problem, error) {
	narKey := path.Clean(ni.URL)
	problem := func(k Kind, detail string) []Problem {
		return []Problem{{Kind: k, Key: key, Path: ni.StorePath, Detail: narKey + ": " + detail}}
	}
	obj, listed := v.nars[narKey]
	if listed {
		obj.referenced.Store(true)
	}
	switch {
	case listed && ni.FileSize > 0 && uint64(obj.size) != ni.FileSize:
		return problem(NARSize, fmt.Sprintf("object is %d bytes, FileSize says %d", obj.size, ni.FileSize)), nil
	case !listed:
		// Not covered by the listing, or written since (pushers go on
		// while verify reads): ask.
		var ok bool
		err := retry.Reads.Do(ctx, func() error {
			var err error
			ok, err = v.cache.Exists(ctx, narKey)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("check NAR %s: %w", narKey, err)
		}
		listed = ok
	}
	if !listed {
		if gone, err := v.gone(ctx, key); err != nil || gone {
			return nil, err // deleted meanwhile (a gc): nothing to verify
		}
		return problem(MissingNAR, "no such object"), nil
	}
	if !v.opts.Full {
		return nil, nil
	}
	if err := v.fullJobs.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer v.fullJobs.Release(1)
	verdict, err := checkNAR(ctx, v.cache, narKey, ni)
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return problem(MissingNAR, "no such object"), nil
	case errors.Is(err, errCannotDecompress):
		v.mu.Lock()
		v.report.Unchecked++
		v.mu.Unlock()
		return nil, nil
	case err != nil:
		return nil, err
	case verdict != "":
		return problem(CorruptNAR, verdict), nil
	}
	return nil, nil
}

// checkSignatures wants a signature, from a trusted key when any are given.
func (v *verifier) checkSignatures(key string, ni *narinfo.NarInfo) (Problem, bool) {
	if len(ni.Signatures) == 0 {
		return Problem{Kind: Unsigned, Key: key, Path: ni.StorePath, Detail: "no signature"}, false
	}
	v.mu.Lock()
	v.report.Signed++
	v.mu.Unlock()
	if len(v.keys) == 0 {
		return Problem{}, true
	}
	signer, names := cache.TrustedSigner(ni, v.keys)
	if signer != "" {
		return Problem{}, true
	}
	return Problem{Kind: UntrustedSignature, Key: key, Path: ni.StorePath,
		Detail: "no valid signature from a trusted key (signed by " + strings.Join(names, ", ") + ")"}, false
}
