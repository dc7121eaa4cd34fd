package main

import (
	"context"
	"fmt"
	"os"

	"nixpush/uploader"
)

func runKeygen(_ context.Context, args []string) error {
	fs := newFlagSet("keygen", "NAME [SECRET-FILE PUBLIC-FILE]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a := fs.Args()
	var name, sec, pub string
	switch len(a) {
	case 1:
		name, sec, pub = a[0], a[0]+".sec", a[0]+".pub"
	case 3:
		name, sec, pub = a[0], a[1], a[2]
	default:
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("keygen takes NAME, optionally followed by SECRET-FILE and PUBLIC-FILE")}
	}
	pk, err := uploader.WriteKeyPair(name, sec, pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote secret key %s and public key %s\ntrusted-public-keys entry: %s\n", sec, pub, pk)
	return nil
}
