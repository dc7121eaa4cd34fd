package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"nixpush/uploader"
)

// newKeygenCommand is `nixpush keygen NAME`: a signing key pair in Nix's
// format, as nix-store --generate-binary-cache-key writes it.
func newKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen NAME [SECRET-FILE PUBLIC-FILE]",
		Short: "write a signing key pair in Nix's format",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) != 1 && len(a) != 3 {
				return usageError("keygen takes NAME, optionally followed by SECRET-FILE and PUBLIC-FILE")
			}
			if err := uploader.CheckKeyName(a[0]); err != nil {
				return usageError("%w", err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			name, sec, pub := a[0], a[0]+".sec", a[0]+".pub"
			if len(a) == 3 {
				sec, pub = a[1], a[2]
			}
			pk, err := uploader.WriteKeyPair(name, sec, pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote secret key %s and public key %s\ntrusted-public-keys entry: %s\n", sec, pub, pk)
			return nil
		},
	}
}
