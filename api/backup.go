package api

import (
	"context"
	"math"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/store"
)

// backup sends a consistent snapshot of the whole database as a download,
// a file that `vatio restore` takes. The snapshot is copied to a temporary
// file first (store.Snapshot), so a slow client never holds a database
// transaction open; Fiber streams the file and closes it, which deletes it,
// when the response ends or the client goes away.
func (s *Server) backup(c *fiber.Ctx) error {
	snap, size, err := s.store.Snapshot()
	if err != nil {
		return err
	}
	length := -1 // chunked, if the size does not fit an int (32-bit ARM)
	if size <= math.MaxInt {
		length = int(size)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+store.BackupName(s.now(), s.store.Encrypted())+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Response().SetBodyStream(snap, length)
	return nil
}

// offsiteSync serves POST /api/v1/offsite/sync (admin): ship what is new
// or changed now rather than at the next scheduled sync.
func (s *Server) offsiteSync(c *fiber.Ctx) error {
	// Not fasthttp's context, which is recycled once the handler returns
	// while the storage client's goroutines may still read it; this one
	// ends with the server.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	st, err := s.offsite.Sync(ctx)
	if err != nil {
		return fiber.NewError(fiber.StatusBadGateway, err.Error())
	}
	return c.JSON(fiber.Map{"uploaded": st.Uploaded, "deleted": st.Deleted})
}
