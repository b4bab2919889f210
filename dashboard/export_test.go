package dashboard

import (
	"github.com/vatio-energy/vatio/store"
)

// NewWithoutECharts returns the dashboard that New returns in a binary built
// without make assets.
func NewWithoutECharts(st *store.Store, opts Options) *Dashboard {
	assets, err := loadAssets()
	if err != nil {
		panic(err)
	}
	delete(assets, echartsFile)
	return newDashboard(st, opts, assets)
}

// Recipients is recipients, for the tests of package dashboard_test.
var Recipients = recipients
