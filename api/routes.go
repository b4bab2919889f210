package api

import (
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)\??`)

// Undocumented returns the routes of app ("GET /api/v1/meters/{id}") that are
// missing from paths, an OpenAPI document's paths object. Fiber's implicit
// HEAD routes are left out.
func Undocumented(app *fiber.App, paths map[string]map[string]any) []string {
	var missing []string
	seen := map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		if r.Method == fiber.MethodHead {
			continue
		}
		p := fiberParam.ReplaceAllString(r.Path, "{$1}")
		p = strings.Replace(p, "*", "{path}", 1)
		method := strings.ToLower(r.Method)
		key := r.Method + " " + p
		if seen[key] {
			continue
		}
		seen[key] = true
		if _, ok := paths[p][method]; !ok {
			missing = append(missing, key)
		}
	}
	return missing
}
