package nixstore

import (
	"fmt"
	"io"

	"github.com/nix-community/go-nix/pkg/nar"
)

// DumpNAR writes the NAR serialisation of a store path to w, byte for byte
// what `nix-store --dump` writes. go-nix emits many small writes, so w
// should be buffered.
func (s *Store) DumpNAR(w io.Writer, storePath string) error {
	if err := nar.DumpPath(w, s.RealPath(storePath)); err != nil {
		return fmt.Errorf("dump NAR of %s: %w", storePath, err)
	}
	return nil
}
