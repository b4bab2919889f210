package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Log is the notifier that writes alerts to the log. It always succeeds.
type Log struct {
	Logger *slog.Logger
}

// Name implements Notifier.
func (Log) Name() string { return "log" }

// Notify implements Notifier.
func (l Log) Notify(_ context.Context, a store.Alert) error {
	level := slog.LevelInfo
	switch a.Severity {
	case SeverityWarning:
		level = slog.LevelWarn
	case SeverityCritical:
		level = slog.LevelError
	}
	l.Logger.Log(context.Background(), level, "alert",
		slog.Uint64("id", a.ID), slog.String("severity", a.Severity), slog.String("meter", a.Meter),
		slog.String("source", a.Source), slog.String("message", a.Message))
	return nil
}

// Webhook is the notifier that POSTs each alert as JSON to a URL:
// {"id":1,"time":"...","severity":"warning","message":"...","meter":"m1","source":"api"}.
// Any 2xx answer is a delivery; anything else is retried.
type Webhook struct {
	URL    string
	Client *http.Client
}

// NewWebhook returns a webhook notifier with a per-attempt timeout.
func NewWebhook(url string, timeout time.Duration) *Webhook {
	return &Webhook{URL: url, Client: &http.Client{Timeout: timeout}}
}

// Name implements Notifier.
func (*Webhook) Name() string { return "webhook" }

type webhookBody struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
	Meter    string    `json:"meter,omitempty"`
	Source   string    `json:"source"`
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, a store.Alert) error {
	body, err := json.Marshal(webhookBody{ID: a.ID, Time: a.Time, Severity: a.Severity, Message: a.Message, Meter: a.Meter, Source: a.Source})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vatio")
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", req.URL.Host, resp.Status)
	}
	return nil
}
