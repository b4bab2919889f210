package config

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LocalZone returns the machine's time zone under its IANA name
// ("Europe/Madrid"), which time.Local does not know (its name is "Local"),
// so that the API and the dashboard can name the zone they count days in.
// The name is taken where Go takes the zone from: the TZ variable
// (tz, set says whether it is set at all: set and empty is UTC), else
// /etc/localtime, by the zone file it links to, else /etc/timezone (Debian),
// else the file under /usr/share/zoneinfo with the same content. root is
// the directory those paths are under ("/"). A machine on UTC gets "UTC";
// one whose zone has no name found gets time.Local.
func LocalZone(tz string, set bool, root string) *time.Location {
	etc := func(p string) string { return filepath.Join(root, p) }
	zoneinfo := etc("usr/share/zoneinfo")
	var names []string
	if set {
		tz = strings.TrimPrefix(tz, ":")
		if tz == "" {
			return time.UTC
		}
		names = append(names, zoneName(tz))
	} else {
		if target, err := os.Readlink(etc("etc/localtime")); err == nil {
			names = append(names, zoneName(target))
		}
		if b, err := os.ReadFile(etc("etc/timezone")); err == nil {
			names = append(names, strings.TrimSpace(string(b)))
		}
		if name := sameZoneFile(etc("etc/localtime"), zoneinfo); name != "" {
			names = append(names, name)
		}
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		if slices.Contains(utcNames, name) {
			return time.UTC
		}
		if loc, err := loadZone(name, zoneinfo); err == nil {
			return loc
		}
	}
	if isUTC(time.Local) {
		return time.UTC
	}
	return time.Local
}

// utcNames are the names tzdata gives UTC.
var utcNames = []string{"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}

// zoneName is the IANA name in a path to a zone file
// (/usr/share/zoneinfo/Europe/Madrid, ../usr/share/zoneinfo/Europe/Madrid),
// or the name itself when it is not a path.
func zoneName(path string) string {
	if _, name, ok := strings.Cut(path, "zoneinfo/"); ok {
		return strings.TrimPrefix(name, "posix/")
	}
	if strings.HasPrefix(path, "/") {
		return ""
	}
	return path
}

// loadZone loads a zone by its IANA name from zoneinfo, else from Go's own
// database.
func loadZone(name, zoneinfo string) (*time.Location, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	if b, err := os.ReadFile(filepath.Join(zoneinfo, name)); err == nil {
		return time.LoadLocationFromTZData(name, b)
	}
	return time.LoadLocation(name)
}

// sameZoneFile is the name of the file under zoneinfo whose content is that
// of path (an /etc/localtime copied rather than linked), or "".
func sameZoneFile(path, zoneinfo string) string {
	want, err := os.ReadFile(path)
	if err != nil || len(want) == 0 {
		return ""
	}
	if dir, err := filepath.EvalSymlinks(zoneinfo); err == nil {
		zoneinfo = dir // a link to the zone files (NixOS)
	}
	var found string
	filepath.WalkDir(zoneinfo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fs.SkipDir
		}
		rel, _ := filepath.Rel(zoneinfo, p)
		if d.IsDir() {
			if rel == "posix" || rel == "right" {
				return fs.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || !d.Type().IsRegular() || info.Size() != int64(len(want)) {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, want) {
			// Area/City rather than an old alias of it (GB, Japan).
			if rel = filepath.ToSlash(rel); found == "" || !strings.Contains(found, "/") {
				found = rel
			}
			if strings.Contains(found, "/") {
				return fs.SkipAll
			}
		}
		return nil
	})
	return found
}

// isUTC reports whether loc is UTC all year: no offset in January nor in
// July.
func isUTC(loc *time.Location) bool {
	for _, month := range []time.Month{time.January, time.July} {
		if _, off := time.Date(2026, month, 1, 0, 0, 0, 0, loc).Zone(); off != 0 {
			return false
		}
	}
	return true
}
