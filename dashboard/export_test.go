package dashboard

import (
	"log/slog"

	"github.com/vatio-energy/vatio/store"
)

// FormatPower exposes formatPower to the tests of package dashboard_test.
var FormatPower = formatPower

// NewWithoutECharts returns the dashboard that New returns in a binary built
// without make assets.
func NewWithoutECharts(st *store.Store, logger *slog.Logger) *Dashboard {
	assets, err := loadAssets()
	if err != nil {
		panic(err)
	}
	delete(assets, echartsFile)
	return newDashboard(st, logger, assets)
}
