package api

import (
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)\??`)

// Route is a route of the app as an OpenAPI description names it: Method
// in upper case, Path with {parameters} ("/api/v1/meters/{id}", the
// wildcard as {path}).
type Route struct {
	Method, Path string
}

// Routes returns the routes registered in app, each once, without Fiber's
// implicit HEAD routes.
func Routes(app *fiber.App) []Route {
	var out []Route
	seen := map[Route]bool{}
	for _, r := range app.GetRoutes(true) {
		if r.Method == fiber.MethodHead {
			continue
		}
		p := fiberParam.ReplaceAllString(r.Path, "{$1}")
		p = strings.Replace(p, "*", "{path}", 1)
		rt := Route{Method: r.Method, Path: p}
		if !seen[rt] {
			seen[rt] = true
			out = append(out, rt)
		}
	}
	return out
}

// Undocumented returns the routes of app ("GET /api/v1/meters/{id}") that are
// missing from paths, an OpenAPI document's paths object. Fiber's implicit
// HEAD routes are left out.
func Undocumented(app *fiber.App, paths map[string]map[string]any) []string {
	var missing []string
	for _, r := range Routes(app) {
		if _, ok := paths[r.Path][strings.ToLower(r.Method)]; !ok {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	return missing
}
