package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/cache/location"
	"nixpush/cache/verify"
	"nixpush/nixstore"
	"nixpush/pipeline"
	"nixpush/uploader"
)

// verifyCommand is `nixpush verify --to URL [PATH...]`: it reads the
// cache (all of it, or the closures of PATHs) and reports every
// inconsistency; with --repair it re-pushes what is broken or missing
// from the local store through the same pipeline as push.
type verifyCommand struct {
	flags       pipelineFlags
	trustedKeys []string
	full        bool
	asJSON      bool
	repair      bool
}

func newVerifyCommand() *cobra.Command {
	c := &verifyCommand{}
	cmd := &cobra.Command{
		Use:   "verify --to URL [--trusted-key PUB]... [--full] [--repair] [PATH...]",
		Short: "check that a cache is whole (and --repair it from the local store)",
		Example: `  nixpush verify --to s3://fleet-cache --trusted-key mycache-1.pub            # whole? exit 0, else 1
  nixpush verify --to s3://fleet-cache --trusted-key mycache-1.pub --repair   # re-push what is broken
  nixpush verify --to file:///srv/cache --full ./result                      # download and hash the closure's NARs`,
		RunE: withSignals(c.run),
	}
	fs := cmd.Flags()
	c.flags.addRepair(fs, "warn")
	fs.StringArrayVar(&c.trustedKeys, "trusted-key", nil, "public key (NAME:BASE64, or a file) a narinfo must be signed by (repeatable)")
	setGroup(fs, groupSigning, "trusted-key")
	fs.BoolVar(&c.full, "full", false, "also download every NAR and check its hashes")
	fs.BoolVar(&c.repair, "repair", false, "re-push, from the local store, every path found broken or missing")
	fs.BoolVar(&c.asJSON, "json", false, "print the report as JSON on stdout")
	setGroup(fs, groupOutput, "json")
	return cmd
}

func (c *verifyCommand) run(cmd *cobra.Command, args []string) error {
	urls, err := cacheURLFlags(c.flags.to)
	if err != nil {
		return err
	}
	// A cache that is not whole fails silently (its report says why);
	// any other error is printed.
	var errs []error
	notWhole := false
	for _, u := range urls {
		var ee *exitError
		switch err := c.verifyOne(cmd, u, args); {
		case err == nil:
		case errors.As(err, &ee) && ee.err == nil:
			notWhole = true
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if notWhole {
		return &exitError{code: exitFailure}
	}
	return nil
}

// verifyOne verifies (and repairs) one cache.
func (c *verifyCommand) verifyOne(cmd *cobra.Command, u *location.URL, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	var err error
	opts := verify.Options{Full: c.full}
	if err := c.readLocalStore(ctx, args, &opts); err != nil {
		return err
	}
	if c.repair {
		// Refused before anything is deleted or written.
		if err := c.checkRepairSigns(u); err != nil {
			return err
		}
	}
	for _, k := range c.trustedKeys {
		opts.TrustedKeys = append(opts.TrustedKeys, readKeyArg(k))
	}
	// Only --repair may make a cache of what is not one yet (it pushes,
	// nix-cache-info first); plain verify creates nothing.
	open := c.flags.network.openCache
	if c.repair {
		open = func(ctx context.Context, u *location.URL) (cache.Cache, error) {
			return u.Open(ctx, c.flags.network.options())
		}
	}
	cc, err := open(ctx, u)
	if err != nil {
		return err
	}
	defer cache.Close(cc)
	stop := startCountProgress(stderr, "verifying")
	opts.Progress = stop.update
	report, err := verify.Run(ctx, cc, opts)
	stop.finish()
	if err != nil {
		return err
	}
	if c.repair && !report.Whole() && report.Signed > 0 && !c.hasSigningKey(u) && !c.flags.allowUnsigned {
		return usageError("the cache's narinfos are signed (%d of those read): --repair would write unsigned ones, which clients trusting the cache's key reject; give --signing-key (or secret-key= in the URL), or --allow-unsigned", report.Signed)
	}
	if c.repair && !report.Whole() {
		if err := c.runRepair(cmd, u, &report); err != nil {
			return err
		}
		report, err = verify.Run(ctx, cc, opts)
		if err != nil {
			return err
		}
	}
	if c.asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printReport(cmd.OutOrStdout(), report)
	}
	if !report.Whole() {
		return &exitError{code: exitFailure}
	}
	return nil
}

// runRepair deletes the broken narinfos, then pushes the closures of what
// the local store has; what it lacks is listed, not guessed.
func (c *verifyCommand) runRepair(cmd *cobra.Command, u *location.URL, report *verify.Report) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	log, err := c.flags.log.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := c.flags.config(log)
	if err != nil {
		return err
	}
	cfg.Caches = slices.DeleteFunc(cfg.Caches, func(cc pipeline.CacheConfig) bool { return cc.URL.Identity() != u.Identity() })
	// Repair trusts what verify has just seen, not the memo of what
	// earlier runs saw (the cache's nix-cache-info included); what the
	// user asks to repair is pushed whatever the filters say.
	cfg.Recheck, cfg.Filter = true, uploader.Filter{IncludeDrv: true}
	p, err := pipeline.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	canPush := func(path string) bool {
		_, err := p.Store.QueryPathInfo(ctx, path)
		return err == nil
	}
	push, unrepairable, err := verify.PrepareRepair(ctx, p.Lanes[0].Cache, report, canPush)
	if err != nil {
		return err
	}
	for _, u := range unrepairable {
		fmt.Fprintf(stderr, "nixpush: cannot repair %s: not in the local store\n", u)
	}
	if len(push) == 0 {
		return nil
	}
	closure, err := p.Store.Closure(ctx, push)
	if err != nil {
		return err
	}
	log.Info("repairing", zap.Int("paths", len(push)))
	_, err = pushLanes(ctx, stderr, p, closure, false)
	return err
}

// printReport prints problems one per line, then the counts.
func printReport(w io.Writer, r verify.Report) {
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%s %s: %s\n", p.Kind, firstNonEmpty(p.Path, p.Key), p.Detail)
	}
	var counts []string
	for k, n := range r.Counts {
		counts = append(counts, fmt.Sprintf("%d %s", n, k))
	}
	state := "whole"
	if !r.Whole() {
		state = "NOT whole"
	}
	fmt.Fprintf(w, "%s: %d narinfos, %d NARs checked; %s", r.Cache, r.NarInfos, r.NARs, state)
	if len(counts) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(counts, ", "))
	}
	fmt.Fprintln(w)
}

// readKeyArg takes a key given inline or as a file holding it.
func readKeyArg(k string) string {
	if b, err := os.ReadFile(k); err == nil {
		return strings.TrimSpace(string(b))
	}
	return k
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readLocalStore resolves the paths to verify through the local store,
// and reads its realisations, which the cache should serve for the
// outputs it holds. A machine without a Nix DB at the default --store
// verifies paths and signatures alone.
func (c *verifyCommand) readLocalStore(ctx context.Context, args []string, opts *verify.Options) error {
	if len(args) == 0 && c.flags.store == "/" && !nixstore.DBExists("/") {
		return nil
	}
	store, err := nixstore.Open(c.flags.store)
	if err != nil {
		return err
	}
	defer store.Close()
	if len(args) > 0 {
		if opts.Paths, err = pipeline.ResolvePaths(store, args); err != nil {
			return err
		}
	}
	opts.Realisations, err = store.QueryAllRealisations(ctx)
	return err
}

// hasSigningKey reports whether the repair would sign what it writes.
func (c *verifyCommand) hasSigningKey(u *location.URL) bool {
	return len(c.flags.signingKeys) > 0 || u.Setting("secret-key") != "" || u.Setting("secret-keys") != ""
}

// checkRepairSigns refuses a repair that would write unsigned narinfos
// into a cache that --trusted-key says must be signed.
func (c *verifyCommand) checkRepairSigns(u *location.URL) error {
	if len(c.trustedKeys) > 0 && !c.hasSigningKey(u) && !c.flags.allowUnsigned {
		return usageError("--repair with --trusted-key needs --signing-key (or secret-key= in the URL): without one it would write unsigned narinfos, which verify itself then reports (--allow-unsigned to do so anyway)")
	}
	return nil
}

// resolvePaths maps arguments (store paths, ./result links) to store
// paths through the local store.
func resolvePaths(root string, args []string) ([]string, error) {
	store, err := nixstore.Open(root)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return pipeline.ResolvePaths(store, args)
}
