package s3cache

import (
	"context"
	"errors"

	"nixpush/uploader"
)

// List and Delete: placeholders until the backend implements them.

func (c *Cache) List(context.Context, string, func(uploader.Object) error) error {
	return errors.New("s3cache: list not implemented yet")
}

func (c *Cache) Delete(context.Context, []string) error {
	return errors.New("s3cache: delete not implemented yet")
}
