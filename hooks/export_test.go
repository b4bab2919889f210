package hooks

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/internal/meter"
)

// RejectedCounter exposes the rejection counter of one reason to tests.
func (h *Ingest) RejectedCounter(r meter.Reason) prometheus.Counter {
	return h.rejected.WithLabelValues(string(r))
}

// UnstoredCounter exposes the counter of readings the store could not take.
func (h *Ingest) UnstoredCounter() prometheus.Counter { return h.unstored }
