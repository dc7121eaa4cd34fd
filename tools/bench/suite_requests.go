package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nixpush/internal/servertest"
)

// The requests suite counts what a push, a verify and a gc cost in
// requests, the unit S3 bills, per path: counted on the wire by a proxy
// in front of the server (servertest.S3Proxy), the same proxy for
// nixpush and for nix copy. Nix 2.8 here has no S3 support, so nix copy
// is counted against nginx (HTTP PUT, as in the remote suite); nixpush
// against both.

const requestsIntro = "Each command runs once against a server on 127.0.0.1 behind a counting proxy " +
	"(`servertest.S3Proxy`, in the bench's process: it passes every request on and counts it by S3 operation; " +
	"for nginx the operation is the HTTP method's: PUT, GET, HEAD, PROPFIND). Input: the first 300 of the remote " +
	"suite's small paths (no build logs, no references: a path is its NAR and its narinfo). S3: versitygw, " +
	"`nixpush push --to 's3://BUCKET/run-N?endpoint=PROXY&scheme=http' ...`; HTTP: nginx with WebDAV, " +
	"`--to http://PROXY/run-N/`, and `nix --store ROOT copy --to 'http://PROXY/run-N/?compression=zstd&secret-key=SEC'` " +
	"with a fresh home (Nix remembers narinfo lookups in XDG_CACHE_HOME). \"present, memo\" runs push again with the " +
	"state dir of the first push (this machine), \"present, empty state\" with a new one (a new CI runner). verify " +
	"reads the whole cache (`nixpush verify --to URL --trusted-key PUB`, `--full` downloads every NAR); " +
	"`nix store verify --store URL --no-contents PATHS` checks the paths' signatures; gc is `nixpush gc --to URL " +
	"--keep-days 30 --delete` with nothing to delete. Totals include what a run costs once (the bucket check, " +
	"nix-cache-info, the probe of conditional writes): per path is total ÷ 300."

// reqRow is one command's counts.
type reqRow struct {
	label, server string
	ops           map[string]int64
}

// kinds folds S3 operations (or HTTP methods) into the columns.
func kinds(ops map[string]int64) map[string]int64 {
	k := map[string]int64{}
	for op, n := range ops {
		switch op {
		case "PutObject":
			k["PUT"] += n
		case "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload":
			k["parts/POST"] += n
		case "GetObject":
			k["GET"] += n
		case "HeadObject", "HeadBucket":
			k["HEAD"] += n
		case "ListObjectsV2", "ListObjects", "ListParts", "ListMultipartUploads", "PROPFIND":
			k["LIST"] += n
		case "DeleteObject", "DeleteObjects", "AbortMultipartUpload":
			k["DELETE"] += n
		default:
			k["other"] += n
		}
	}
	return k
}

var kindColumns = []string{"PUT", "parts/POST", "GET", "HEAD", "LIST", "DELETE"}

func runRequestsSuite(ctx context.Context, b *bench) (*report, error) {
	w := b.work
	in, err := w.smallPaths(ctx)
	if err != nil {
		return nil, err
	}
	paths := in.Paths[:300]
	pub, err := os.ReadFile(filepath.Join(w.Dir, "key.pub"))
	if err != nil {
		return nil, err
	}
	dir, err := w.newScratch("requests")
	if err != nil {
		return nil, err
	}
	defer removeAll(dir)
	v, err := startVersitygw(filepath.Join(dir, "versitygw"), "bench")
	if err != nil {
		return nil, err
	}
	defer v.Stop()
	ng, err := startNginx(filepath.Join(dir, "nginx"))
	if err != nil {
		return nil, err
	}
	defer ng.Stop()
	s3px, err := servertest.StartS3Proxy(v.Addr)
	if err != nil {
		return nil, err
	}
	defer s3px.Close()
	httppx, err := servertest.StartS3Proxy(ng.Addr)
	if err != nil {
		return nil, err
	}
	defer httppx.Close()
	awsEnv := append(v.AWSEnv(dir), "AWS_REGION=us-east-1")

	var rows []reqRow
	count := func(label, server string, px *servertest.S3Proxy, env []string, name string, args ...string) error {
		px.Reset()
		home, err := w.newScratch("home")
		if err != nil {
			return err
		}
		defer removeAll(home)
		if out, err := runCmd(ctx, "", append(cleanEnv(home), env...), name, args...); err != nil && !strings.Contains(label, "verify") {
			return fmt.Errorf("%s: %w: %s", label, err, tail(out, 500))
		}
		rows = append(rows, reqRow{label: label, server: server, ops: px.Counts()})
		return nil
	}
	for _, target := range []struct {
		server, url string
		px          *servertest.S3Proxy
		env         []string
	}{
		{"versitygw (S3)", fmt.Sprintf("s3://%s/run-1?endpoint=%s&scheme=http&region=us-east-1", v.Bucket, s3px.Addr), s3px, awsEnv},
		{"nginx (HTTP)", "http://" + httppx.Addr + "/run-1/", httppx, nil},
	} {
		state := filepath.Join(dir, "state-"+target.server[:5])
		push := func(state string) []string {
			return append([]string{"push", "--store", w.Root, "--to", target.url, "--signing-key", w.SecKey, "--state-dir", state}, paths...)
		}
		steps := []struct {
			label string
			args  []string
		}{
			{"nixpush push, new", push(state)},
			{"nixpush push, present, memo", push(state)},
			{"nixpush push, present, empty state", push(filepath.Join(dir, "fresh-"+target.server[:5]))},
			{"nixpush verify", []string{"verify", "--to", target.url, "--trusted-key", strings.TrimSpace(string(pub)), "--state-dir", state}},
			{"nixpush verify --full", []string{"verify", "--full", "--to", target.url, "--trusted-key", strings.TrimSpace(string(pub)), "--state-dir", state}},
			{"nixpush gc --delete", []string{"gc", "--to", target.url, "--keep-days", "30", "--delete", "--state-dir", state}},
		}
		for _, s := range steps {
			if err := count(s.label, target.server, target.px, target.env, b.bin, s.args...); err != nil {
				return nil, err
			}
		}
	}
	nixURL := "http://" + httppx.Addr + "/run-nix/"
	nixCopy := append([]string{"--store", w.Root, "copy", "--to", nixURL + "?compression=zstd&secret-key=" + w.SecKey}, paths...)
	if err := count("nix copy, new", "nginx (HTTP)", httppx, nil, "nix", nixCopy...); err != nil {
		return nil, err
	}
	if err := count("nix copy, present", "nginx (HTTP)", httppx, nil, "nix", nixCopy...); err != nil {
		return nil, err
	}
	nixVerify := append([]string{"--extra-experimental-features", "nix-command", "store", "verify", "--store", nixURL, "--no-contents",
		"--option", "trusted-public-keys", strings.TrimSpace(string(pub))}, paths...)
	if err := count("nix store verify --no-contents", "nginx (HTTP)", httppx, nil, "nix", nixVerify...); err != nil {
		return nil, err
	}

	t := &table{Header: append(append([]string{"run", "server"}, kindColumns...), "total", "per path")}
	perPath := map[string]float64{}
	for _, r := range rows {
		k := kinds(r.ops)
		cells := []string{r.label, r.server}
		var total int64
		for _, c := range kindColumns {
			cells = append(cells, fmt.Sprint(k[c]))
			total += k[c]
		}
		total += k["other"]
		per := float64(total) / float64(len(paths))
		perPath[r.label+" "+r.server] = per
		t.add(append(cells, fmt.Sprint(total), fmt.Sprintf("%.2f", per))...)
	}
	rep := &report{Title: "Requests per path: push, verify and gc beside nix copy", Method: "one run of each command; requests counted by the proxy",
		Intro: requestsIntro, Sections: []section{{Title: fmt.Sprintf("%d small paths", len(paths)), Table: t}}}
	// What a run costs once (the bucket check, nix-cache-info read and
	// written, the probe of conditional writes) is not a path's.
	once := func(label string) float64 {
		for _, r := range rows {
			if r.label == label && r.server == "versitygw (S3)" {
				return float64(r.ops["HeadBucket"]+min(r.ops["GetObject"], 1)) / float64(len(paths)) // the bucket check, nix-cache-info
			}
		}
		return 0
	}
	// A new path's requests: all of the run's but its fixed costs (the
	// bucket check, nix-cache-info read and written, two probes of
	// conditional writes), so a listing page or a HEAD counts against it.
	var newPerPath float64
	var newLists, newHeads int64
	for _, r := range rows {
		if r.label == "nixpush push, new" && r.server == "versitygw (S3)" {
			newLists, newHeads = r.ops["ListObjectsV2"], r.ops["HeadObject"]
			var total int64
			for _, n := range r.ops {
				total += n
			}
			fixed := r.ops["HeadBucket"] + min(r.ops["GetObject"], 1) + 3
			newPerPath = float64(total-fixed) / float64(len(paths))
		}
	}
	rep.Targets = append(rep.Targets,
		targetResult{Name: "a new path costs its NAR and its narinfo and nothing else (S3)", Met: newPerPath <= 2.01,
			Detail: fmt.Sprintf("%.3f requests a path beyond the run's fixed costs: its two writes, and %d listing page(s) and %d HEAD(s) for all %d paths; nix copy over HTTP: %.2f requests a path in all",
				newPerPath, newLists, newHeads, len(paths), perPath["nix copy, new nginx (HTTP)"])},
		targetResult{Name: "a present path known to the memo costs nothing (S3)", Met: perPath["nixpush push, present, memo versitygw (S3)"]-once("nixpush push, present, memo") < 0.005,
			Detail: fmt.Sprintf("%.2f requests a path, the run's bucket check included", perPath["nixpush push, present, memo versitygw (S3)"])},
		targetResult{Name: "a present path from an empty state dir costs at most one request (S3)", Met: perPath["nixpush push, present, empty state versitygw (S3)"]-once("nixpush push, present, empty state") <= 1,
			Detail: fmt.Sprintf("%.2f requests a path, the run's bucket check and nix-cache-info included", perPath["nixpush push, present, empty state versitygw (S3)"])},
	)
	return rep, nil
}
