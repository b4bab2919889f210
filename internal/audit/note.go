package audit

import "context"

type noteKey struct{}

// WithNote returns ctx carrying a place for a handler to say what it
// changed (Note), and that place: the middleware that audits a request
// records it as the entry's detail.
func WithNote(ctx context.Context) (context.Context, *string) {
	var note string
	return context.WithValue(ctx, noteKey{}, &note), &note
}

// Note says what the request of ctx changed ("tariff saved: EUR, 2
// periods"), for its audit entry; without a place (WithNote) it does
// nothing. A later note replaces an earlier one.
func Note(ctx context.Context, detail string) {
	if p, ok := ctx.Value(noteKey{}).(*string); ok {
		*p = detail
	}
}
