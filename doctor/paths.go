package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/storepath"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixconf"
	"nixpush/nixstore"
)

// maxCountedNAR bounds the NARs whose size is checked by reading them
// whole, for backends that offer no cheaper way to learn an object's size.
const maxCountedNAR = 64 << 20

// checkPaths looks each path up in the cache the way Nix would.
func (d *doctor) checkPaths(ctx context.Context) {
	args := d.opts.Paths
	if len(args) == 0 {
		if _, err := os.Lstat("result"); err != nil {
			return
		}
		args = []string{"./result"}
	}
	resolve := storePath
	if d.opts.Store != "" {
		store, err := nixstore.Open(d.opts.Store)
		if err != nil {
			d.add(Check{Name: CheckLocal, Status: Fail, Detail: err.Error(), Fix: "give --store the root of a Nix store (as Nix's --store ROOT)"})
			return
		}
		defer store.Close()
		d.local = store
		resolve = store.Resolve
	}
	for _, arg := range args {
		p, err := resolve(arg)
		if err != nil {
			d.add(Check{Name: CheckPath, Path: arg, Status: Fail, Detail: err.Error(), Fix: "give a store path, or a symlink to one like ./result"})
			continue
		}
		d.checkPath(ctx, p)
	}
}

// checkLocal compares the cache's narinfo of p with the local store's
// record: a cache holding another build of the path (another NarHash)
// makes Nix fail with a hash mismatch, or substitute what this machine
// did not build.
func (d *doctor) checkLocal(ctx context.Context, p string, ni *narinfo.NarInfo) {
	info, err := d.local.QueryPathInfo(ctx, p)
	if errors.Is(err, nixstore.ErrNotValid) {
		d.add(Check{Name: CheckLocal, Path: p, Status: Warn, Detail: "not valid in the local store " + d.opts.Store + ": nothing to compare"})
		return
	}
	if err != nil {
		d.add(Check{Name: CheckLocal, Path: p, Status: Warn, Detail: "cannot read the local store: " + err.Error()})
		return
	}
	local := "sha256:" + nixbase32.EncodeToString(info.NarHash)
	if ni.NarHash == nil || ni.NarHash.String() != local || ni.NarSize != info.NarSize {
		d.add(Check{Name: CheckLocal, Path: p, Status: Fail,
			Detail: fmt.Sprintf("the cache holds another build of it: NarHash %v (%d bytes), the local store %s (%d bytes)", ni.NarHash, ni.NarSize, local, info.NarSize),
			Fix:    "push this machine's build over it: nixpush verify --repair --to " + d.url + " " + p})
		return
	}
	d.add(Check{Name: CheckLocal, Path: p, Status: OK, Detail: "the cache's NarHash and NarSize are the local store's"})
}

// storePath turns an argument into the store path it is or leads to.
// The path need not exist on this machine: that is the point of asking.
func storePath(arg string) (string, error) {
	p := arg
	for hops := 0; hops <= 40; hops++ {
		if rest, ok := strings.CutPrefix(p, nixstore.StoreDir+"/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			if _, err := storepath.FromString(name); err != nil {
				return "", fmt.Errorf("%s is not a valid store path", arg)
			}
			return nixstore.StoreDir + "/" + name, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("%s is not in %s nor a symlink into it", arg, nixstore.StoreDir)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", arg)
}

func (d *doctor) checkPath(ctx context.Context, p string) {
	push := "nixpush push --to " + d.url + " " + p
	ni, err := d.narInfo(ctx, p)
	if errors.Is(err, cache.ErrNotFound) {
		d.add(Check{Name: CheckNarInfo, Path: p, Status: Fail, Detail: "not in the cache (no " + cache.NarInfoKey(p) + ")",
			Fix: "push it from a machine that has it: " + push})
		return
	}
	if err != nil {
		d.add(Check{Name: CheckNarInfo, Path: p, Status: Fail, Detail: err.Error(), Fix: "repush it: " + push})
		return
	}
	d.add(Check{Name: CheckNarInfo, Path: p, Status: OK, Detail: "in the cache"})
	if d.local != nil {
		d.checkLocal(ctx, p, ni)
	}
	d.checkSignature(p, ni)
	d.checkReferences(ctx, p, ni, push)
	d.checkNAR(ctx, p, ni, push)
}

func (d *doctor) narInfo(ctx context.Context, p string) (*narinfo.NarInfo, error) {
	r, err := d.cache.Get(ctx, cache.NarInfoKey(p))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	ni, err := narinfo.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("narinfo does not parse: %w", err)
	}
	if ni.StorePath != p {
		return nil, fmt.Errorf("narinfo is for %s", ni.StorePath)
	}
	return ni, nil
}

// checkSignature verifies the narinfo's signatures against the keys Nix
// trusts.
func (d *doctor) checkSignature(p string, ni *narinfo.NarInfo) {
	var keys []signature.PublicKey
	switch {
	case d.eff != nil:
		keys = trustedKeys(d.eff.TrustedPublicKeys)
	case d.opts.Key != "":
		if k, err := nixconf.ParseKey(d.opts.Key); err == nil {
			keys = append(keys, k)
		}
	}
	if ni.CA != "" && len(ni.Signatures) == 0 {
		d.add(Check{Name: CheckSignature, Path: p, Status: OK, Detail: "content-addressed, needs no signature"})
		return
	}
	signer, names := cache.TrustedSigner(ni, keys)
	if signer != "" {
		d.add(Check{Name: CheckSignature, Path: p, Status: OK, Detail: "signed by trusted key " + signer})
		return
	}
	detail := "not signed at all"
	if len(names) > 0 {
		detail = "signed by " + strings.Join(names, ", ") + ", but no signature verifies with a trusted key"
	}
	d.add(Check{Name: CheckSignature, Path: p, Status: Fail, Detail: detail,
		Fix: "trust the key the cache signs with, or re-sign: nixpush push --signing-key KEY.sec --to " + d.url + " " + p})
}

// checkReferences: Nix substitutes a path only with its closure, so every
// reference must be in the cache too (or already on this machine).
func (d *doctor) checkReferences(ctx context.Context, p string, ni *narinfo.NarInfo, push string) {
	var mu sync.Mutex
	var missing []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	self := filepath.Base(p)
	others := 0
	for _, ref := range ni.References {
		if ref == self {
			continue
		}
		others++
		g.Go(func() error {
			ok, err := d.cache.Exists(gctx, cache.NarInfoKey(ref))
			if err != nil {
				return fmt.Errorf("look up reference %s: %w", ref, err)
			}
			if !ok {
				mu.Lock()
				missing = append(missing, nixstore.StoreDir+"/"+ref)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		d.add(Check{Name: CheckReferences, Path: p, Status: Fail, Detail: err.Error(), Fix: "check the cache answers, then run doctor again"})
		return
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		d.add(Check{Name: CheckReferences, Path: p, Status: Fail,
			Detail: fmt.Sprintf("%d of %d references missing from the cache (unless this machine has them): %s", len(missing), others, strings.Join(missing, " ")),
			Fix:    "push the whole closure: " + push})
		return
	}
	d.add(Check{Name: CheckReferences, Path: p, Status: OK, Detail: fmt.Sprintf("references in the cache: %d of %d", others, others)})
}

// checkNAR: the narinfo's URL must name an object of FileSize bytes.
func (d *doctor) checkNAR(ctx context.Context, p string, ni *narinfo.NarInfo, push string) {
	want := ni.FileSize
	if want == 0 && (ni.Compression == "none" || ni.Compression == "") {
		want = ni.NarSize
	}
	r, err := d.cache.Get(ctx, ni.URL)
	if errors.Is(err, cache.ErrNotFound) {
		d.add(Check{Name: CheckNAR, Path: p, Status: Fail, Detail: "the NAR " + ni.URL + " is missing", Fix: "repush it: " + push})
		return
	}
	if err != nil {
		d.add(Check{Name: CheckNAR, Path: p, Status: Fail, Detail: "cannot read the NAR: " + err.Error(), Fix: "check the cache answers, then run doctor again"})
		return
	}
	defer r.Close()
	got, unknown, err := objectSize(r, want)
	switch {
	case err != nil:
		d.add(Check{Name: CheckNAR, Path: p, Status: Fail, Detail: "cannot read the NAR: " + err.Error(), Fix: "check the cache answers, then run doctor again"})
	case unknown != "":
		d.add(Check{Name: CheckNAR, Path: p, Status: OK, Detail: ni.URL + " present; its size is not checked: " + unknown})
	case got != want:
		d.add(Check{Name: CheckNAR, Path: p, Status: Fail, Detail: fmt.Sprintf("%s has %d bytes, the narinfo says %d", ni.URL, got, want),
			Fix: "the upload was cut short or replaced: repush it: " + push})
	default:
		d.add(Check{Name: CheckNAR, Path: p, Status: OK, Detail: fmt.Sprintf("%s present, %d bytes", ni.URL, got)})
	}
}

// objectSize learns an object's size from an open reader: from the file
// when the backend hands one out (file://), else by reading it when it is
// small, since the Cache interface has no HEAD. When the size is not
// learnt, unknown says why.
func objectSize(r io.Reader, want uint64) (size uint64, unknown string, err error) {
	if want == 0 {
		return 0, "the narinfo gives no FileSize", nil
	}
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		fi, err := f.Stat()
		if err != nil {
			return 0, "", fmt.Errorf("stat: %w", err)
		}
		return uint64(fi.Size()), "", nil
	}
	if want > maxCountedNAR {
		return 0, "larger than 64 MiB, not downloaded", nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxCountedNAR+1))
	if err != nil {
		return 0, "", err
	}
	return uint64(n), "", nil
}
