package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// noToken is the environment of an instance without VATIO_ADMIN_TOKEN:
// its setup page is open to the first visitor.
func noToken(string) string { return "" }

// anon is an HTTP client that sends no token of its own and follows no
// redirect.
var anon = &http.Client{
	Transport:     &http.Transport{},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// postForm posts a URL-encoded form with headers (name, value pairs).
func postForm(t *testing.T, c *http.Client, u string, form url.Values, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "") // no test token
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sessionOf(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "vatio_session" && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// rawClient speaks HTTP/1.1 on one keep-alive connection, so that requests
// with wrong credentials and right ones share the server's buffers.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func (rc *rawClient) do(t *testing.T, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: vatio\r\nContent-Length: %d\r\n", method, path, len(body))
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(rc.conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatalf("%s %s: the server closed the keep-alive connection", method, path)
	}
	return resp.StatusCode, string(out)
}

// TestCredentialsNeverFailUnderInterleaving makes the admin on the setup
// page, logs in again after other form posts, then sends hundreds of
// requests with a valid token and session interleaved with wrong tokens,
// sessions and log-ins, on the same keep-alive connection and on others:
// none of the valid ones may be refused, nor the users list change. Fiber
// reuses request memory; a value kept from one request (a token id, a user
// name) changed under the next.
func TestCredentialsNeverFailUnderInterleaving(t *testing.T) {
	// No rate limit: the test sends a thousand requests in a second from
	// one address, and is about credentials.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("http:\n  rate_limit_per_minute: 0\n"), 0o600)
	v := startVatioEnv(t, t.TempDir(), cfg, noToken, "")
	origin := "http://" + v.http
	const pw = "a long enough password"

	resp := postForm(t, anon, origin+"/setup", url.Values{"user": {"admin"}, "password": {pw}, "confirm": {pw}})
	if resp.StatusCode != http.StatusSeeOther || sessionOf(resp) == "" {
		t.Fatalf("setup: %d, session %q", resp.StatusCode, sessionOf(resp))
	}
	// Other form posts, with other user names, between the setup and the
	// next log-in.
	for i := range 4 {
		if r := postForm(t, anon, origin+"/login", url.Values{"user": {fmt.Sprintf("mallory-%d", i)}, "password": {"wrong password " + strings.Repeat("x", i)}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong log-in %d: %d", i, r.StatusCode)
		}
		if r := postForm(t, anon, origin+"/setup", url.Values{"user": {fmt.Sprintf("eve-%d", i)}, "password": {pw}, "confirm": {pw}}); r.StatusCode != http.StatusConflict {
			t.Fatalf("second setup %d: %d, want 409", i, r.StatusCode)
		}
	}
	resp = postForm(t, anon, origin+"/login", url.Values{"user": {"admin"}, "password": {pw}, "next": {"/"}})
	session := sessionOf(resp)
	if resp.StatusCode != http.StatusSeeOther || session == "" {
		t.Fatalf("log-in after setup: %d", resp.StatusCode)
	}
	cookie := "vatio_session=" + session

	// A token made with the session (and its CSRF token).
	var me struct{ User, CSRF string }
	req, _ := http.NewRequest(http.MethodGet, origin+"/api/v1/me", nil)
	req.Header.Set("Authorization", "")
	req.Header.Set("Cookie", cookie)
	r, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&me)
	r.Body.Close()
	if me.User != "admin" || me.CSRF == "" {
		t.Fatalf("/api/v1/me = %+v", me)
	}
	req, _ = http.NewRequest(http.MethodPost, origin+"/api/v1/tokens", strings.NewReader(`{"name": "meter script", "role": "operator"}`))
	req.Header.Set("Authorization", "")
	req.Header.Set("Cookie", cookie)
	req.Header.Set("X-CSRF-Token", me.CSRF)
	req.Header.Set("Content-Type", "application/json")
	r, err = anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var made struct {
		Token string
		Info  struct{ ID string }
	}
	json.NewDecoder(r.Body).Decode(&made)
	r.Body.Close()
	if r.StatusCode != http.StatusCreated || made.Token == "" {
		t.Fatalf("POST /api/v1/tokens: %d", r.StatusCode)
	}

	// Hundreds of requests: the valid ones on one keep-alive connection,
	// wrong ones on the same connection in between and on three others
	// at the same time.
	conn, err := net.Dial("tcp", v.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := &rawClient{conn: conn, br: bufio.NewReader(conn)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", v.http)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			other := &rawClient{conn: c, br: bufio.NewReader(c)}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wrong := fmt.Sprintf("vat_%012x_%s", g*1000+i, strings.Repeat(string(rune('a'+i%26)), 32))
				if code, _ := other.do(t, "GET", "/api/v1/meters", "", "Authorization", "Bearer "+wrong); code != http.StatusUnauthorized {
					t.Errorf("a wrong token got %d", code)
				}
				if code, _ := other.do(t, "GET", "/api/v1/meters", "", "Cookie", fmt.Sprintf("vatio_session=%040d", i)); code != http.StatusUnauthorized {
					t.Errorf("a wrong session got %d", code)
				}
			}
		}()
	}
	refused := 0
	for i := range 150 {
		wrong := fmt.Sprintf("vat_%012x_%s", 0xabc000+i, strings.Repeat("z", 40))
		steps := []struct {
			headers []string
			want    int
		}{
			{[]string{"Authorization", "Bearer " + made.Token}, 200},
			{[]string{"Authorization", "Bearer " + wrong}, 401},
			{[]string{"Cookie", cookie}, 200},
			{[]string{"Cookie", "vatio_session=" + strings.Repeat("q", 43)}, 401},
			{[]string{"Authorization", "Bearer " + made.Token}, 200},
		}
		for j, s := range steps {
			// Headers of varying number and length before the credentials
			// move them around in the server's reused buffers from one
			// request to the next.
			var headers []string
			for k := range (i + j) % 3 {
				headers = append(headers, fmt.Sprintf("X-Pad-%d", k), strings.Repeat("p", (i*7+j*13)%61))
			}
			headers = append(headers, s.headers...)
			code, body := rc.do(t, "GET", "/api/v1/meters", "", headers...)
			if code != s.want {
				refused++
				if refused < 5 {
					t.Errorf("request %d with %s: %d %s, want %d", i, s.headers[0], code, body, s.want)
				}
			}
		}
		if i%30 == 0 { // a wrong form log-in on the same connection
			form := url.Values{"user": {fmt.Sprintf("intruder%d", i)}, "password": {"not the password at all"}}.Encode()
			if code, _ := rc.do(t, "POST", "/login", form, "Content-Type", "application/x-www-form-urlencoded"); code != http.StatusUnauthorized {
				t.Errorf("wrong log-in on the shared connection: %d", code)
			}
		}
	}
	close(stop)
	wg.Wait()
	if refused > 0 {
		t.Fatalf("%d of 750 requests answered otherwise than their credentials deserve", refused)
	}

	// The users are as made; the admin still logs in.
	var users struct{ Users []struct{ Name, Role string } }
	code, body := rc.do(t, "GET", "/api/v1/users", "", "Cookie", cookie)
	if json.Unmarshal([]byte(body), &users); code != 200 || len(users.Users) != 1 || users.Users[0].Name != "admin" || users.Users[0].Role != "admin" {
		t.Errorf("users = %d %s, want the admin alone", code, body)
	}
	if resp := postForm(t, anon, origin+"/login", url.Values{"user": {"admin"}, "password": {pw}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("log-in at the end: %d", resp.StatusCode)
	}

	// Revoking the used token: 204, then it is refused.
	if code, body := rc.do(t, "DELETE", "/api/v1/tokens/"+made.Info.ID, "", "Cookie", cookie, "X-CSRF-Token", me.CSRF); code != http.StatusNoContent {
		t.Fatalf("revoke a used token: %d %s", code, body)
	}
	if code, _ := rc.do(t, "GET", "/api/v1/meters", "", "Authorization", "Bearer "+made.Token); code != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d, want 401", code)
	}
}

// TestSetupNeedsTheAdminToken: with VATIO_ADMIN_TOKEN set and no admin
// user, the setup page asks for the token and says why; without it, or
// with another, nobody becomes admin; with it, the admin is made.
func TestSetupNeedsTheAdminToken(t *testing.T) {
	v := startVatio(t, t.TempDir()) // seeded with testAdminToken
	origin := "http://" + v.http
	req, _ := http.NewRequest(http.MethodGet, origin+"/setup", nil)
	req.Header.Set("Authorization", "")
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `name="token"`) || !strings.Contains(string(page), "VATIO_ADMIN_TOKEN") {
		t.Fatalf("GET /setup: %d; the page must ask for the admin token and say why:\n%s", resp.StatusCode, page)
	}
	const pw = "a long enough password"
	for _, tok := range []string{"", "vat_00000000e2e0_not-the-right-token-at-all-000", "vat_abcdefabcdef_" + strings.Repeat("x", 30)} {
		resp := postForm(t, anon, origin+"/setup", url.Values{"user": {"mallory"}, "password": {pw}, "confirm": {pw}, "token": {tok}})
		if resp.StatusCode != http.StatusForbidden || sessionOf(resp) != "" {
			t.Errorf("setup with token %q: %d, want 403 and no session", tok, resp.StatusCode)
		}
	}
	var users struct{ Users []struct{ Name string } }
	if getJSON(t, origin+"/api/v1/users", &users); len(users.Users) != 0 {
		t.Fatalf("users after refused setups: %+v", users.Users)
	}
	resp = postForm(t, anon, origin+"/setup", url.Values{"user": {"ana"}, "password": {pw}, "confirm": {pw}, "token": {testAdminToken}})
	if resp.StatusCode != http.StatusSeeOther || sessionOf(resp) == "" {
		t.Fatalf("setup with the admin token: %d", resp.StatusCode)
	}
	if getJSON(t, origin+"/api/v1/users", &users); len(users.Users) != 1 || users.Users[0].Name != "ana" {
		t.Errorf("users = %+v, want ana", users.Users)
	}
}

// bomb returns a small body in encoding that inflates to n bytes of
// zeros. gzip's is 1 GiB (members of 16 MiB one after another, as gzip
// allows), made in a moment even under the race detector.
func bomb(t *testing.T, encoding string) (body []byte, n int) {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	n = 64 << 20
	switch encoding {
	case "gzip":
		w, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		n = 16 << 20
	case "deflate":
		w, _ = zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	case "br":
		w = brotli.NewWriterLevel(&buf, 2)
	}
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(zeros) {
		w.Write(zeros[:min(left, len(zeros))])
	}
	w.Close()
	if encoding == "gzip" {
		return bytes.Repeat(buf.Bytes(), 64), 64 * n
	}
	return buf.Bytes(), n
}

// TestBodiesAreBoundedOnceDecoded sends compressed bodies that inflate to
// a gigabyte to routes open to anyone (/login, /setup) and to the API: each
// is refused with 413 once past the body limit, not inflated. An unknown
// encoding is a 415. A multipart body refused for want of credentials
// leaves nothing on disk. A small gzipped JSON alert still works.
func TestBodiesAreBoundedOnceDecoded(t *testing.T) {
	// Vatio runs as a process of its own, whose temporary directory is
	// the test's to look into.
	tmp := t.TempDir()
	_, _, httpAddr, _ := childWith(t, t.TempDir(), emptyConfig(t), "TMPDIR="+tmp)
	v := struct{ http string }{httpAddr}
	// send returns the status and body of the answer, which may come
	// before the whole body was sent (the server then closes the
	// connection), or 0 and the error when none came.
	send := func(method, path, contentType, encoding string, body []byte, auth bool) (int, string) {
		t.Helper()
		conn, err := net.Dial("tcp", v.http)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var head strings.Builder
		fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: vatio\r\nContent-Type: %s\r\nContent-Length: %d\r\n", method, path, contentType, len(body))
		if encoding != "" {
			fmt.Fprintf(&head, "Content-Encoding: %s\r\n", encoding)
		}
		if auth {
			fmt.Fprintf(&head, "Authorization: Bearer %s\r\n", testAdminToken)
		}
		head.WriteString("\r\n")
		go func() {
			if _, err := io.WriteString(conn, head.String()); err == nil {
				conn.Write(body)
			}
		}()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, enc := range []string{"gzip", "deflate", "br"} {
		b, n := bomb(t, enc)
		for _, route := range []struct {
			path, contentType string
			auth              bool
		}{
			{"/login", "application/x-www-form-urlencoded", false},
			{"/setup", "application/x-www-form-urlencoded", false},
			{"/api/alert", "application/json", true},
			{"/api/v1/rules", "application/json", false},
		} {
			if code, body := send("POST", route.path, route.contentType, enc, b, route.auth); code != http.StatusRequestEntityTooLarge {
				t.Errorf("POST %s with a %d-byte %s body of %d bytes: %d %.200s, want 413", route.path, len(b), enc, n, code, body)
			}
		}
	}
	// A chunked body that goes on and on (its sender never finishes) is
	// refused once past the limit, not read to its end first.
	for _, path := range []string{"/login", "/api/v1/meters/m/import"} {
		conn, err := net.Dial("tcp", v.http)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: vatio\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n", path)
		go func() {
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("a"), 64<<10))
			for range 40 { // 2.5 MB, then silence with the body unfinished
				if _, err := io.WriteString(conn, chunk); err != nil {
					return
				}
			}
		}()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("POST %s with an endless chunked body: no answer (%v): the server waits for its end", path, err)
		} else if resp.StatusCode != http.StatusRequestEntityTooLarge && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s with an endless chunked body: %d, want 413 or 401", path, resp.StatusCode)
		}
		conn.Close()
	}
	if code, _ := send("POST", "/login", "application/x-www-form-urlencoded", "compress", []byte("x"), false); code != http.StatusUnsupportedMediaType {
		t.Errorf("Content-Encoding compress: %d, want 415", code)
	}
	if code, body := send("POST", "/api/v1/meters/m/import", "text/csv", "compress", []byte("x"), true); code != http.StatusUnsupportedMediaType {
		t.Errorf("an import in Content-Encoding compress: %d %s, want 415", code, body)
	}

	// A small gzipped alert is decoded and raised.
	var small bytes.Buffer
	zw := gzip.NewWriter(&small)
	io.WriteString(zw, `{"message": "gzipped alert", "severity": "info"}`)
	zw.Close()
	if code, body := send("POST", "/api/alert", "application/json", "gzip", small.Bytes(), true); code != http.StatusAccepted {
		t.Errorf("a gzipped alert: %d %s", code, body)
	}

	// 20 MB of multipart upload without credentials, to an import and to
	// another route: refused, and nothing was spooled to disk.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "history.csv")
	fw.Write(bytes.Repeat([]byte("2026-11-01T00:00:00Z,100\n"), 800_000))
	mw.Close()
	for _, path := range []string{"/api/v1/meters/m/import", "/api/v1/rules", "/login"} {
		code, body := send("POST", path, mw.FormDataContentType(), "", mp.Bytes(), false)
		if code != http.StatusUnauthorized && code != http.StatusRequestEntityTooLarge {
			t.Errorf("multipart POST %s without credentials: %d %.100s, want 401 or 413", path, code, body)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("a refused multipart POST left %v on disk", left)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatal(err)
	}
}

// TestImportStreamsAndSaysWhyItFailed: a gzipped import is decoded; a
// gzip bomb past the import limit is a 413 with nothing stored; an upload
// that stalls gets an error that says so, not a complaint about its
// first line.
func TestImportStreamsAndSaysWhyItFailed(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("http:\n  import_limit_bytes: 10000000\n  read_timeout: 1s\n"), 0o600)
	v := startVatioEnv(t, t.TempDir(), cfg, testEnv, "")
	u := "http://" + v.http + "/api/v1/meters/plant/import"

	var csv bytes.Buffer
	zw := gzip.NewWriter(&csv)
	t0 := time.Now().Add(-48 * time.Hour).Truncate(time.Minute)
	for i := range 1000 {
		fmt.Fprintf(zw, "%d,%d\n", t0.Add(time.Duration(i)*time.Minute).Unix(), 100+i%7)
	}
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, u, &csv)
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Readings, Added int }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got.Readings != 1000 || got.Added != 1000 {
		t.Fatalf("gzipped import: %d %+v, want 1000 readings added", resp.StatusCode, got)
	}

	// 64 MiB of lines in a small gzip, six times the 10 MB import limit
	// (TestBodiesAreBoundedOnceDecoded sends a 1 GiB one to every body).
	var big bytes.Buffer
	zw, _ = gzip.NewWriterLevel(&big, gzip.BestCompression)
	line := []byte(fmt.Sprintf("%d,100\n", t0.Unix()))
	block := bytes.Repeat(line, (1<<20)/len(line))
	for range 64 {
		zw.Write(block)
	}
	zw.Close()
	req, _ = http.NewRequest(http.MethodPost, u, bytes.NewReader(big.Bytes()))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "nothing was imported") {
		t.Errorf("a gzip bomb import: %d %s, want 413 saying nothing was imported", resp.StatusCode, body)
	}
	var m struct{ Readings int }
	if getJSON(t, "http://"+v.http+"/api/v1/meters/plant", &m); m.Readings != 1000 {
		t.Errorf("after the refused import the meter has %d readings, want 1000", m.Readings)
	}

	// An upload that stops sending halfway: 408 saying so, once
	// read_timeout passed without data; not a complaint about a line.
	conn, err := net.Dial("tcp", v.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/meters/stalled/import HTTP/1.1\r\nHost: vatio\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: 5000000\r\n\r\n", testAdminToken)
	for i := range 3000 { // 60 kB of the 5 MB announced, the last line cut
		fmt.Fprintf(conn, "%d,%d\n", t0.Add(time.Duration(i)*time.Second).Unix(), 100)
	}
	io.WriteString(conn, "17642")
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a stalled upload got no answer: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "stalled") || !strings.Contains(string(body), "nothing was imported") {
		t.Errorf("a stalled upload: %d %s, want 408 saying it stalled and nothing was imported", resp.StatusCode, body)
	}
	if code := getJSON(t, "http://"+v.http+"/api/v1/meters/stalled", nil); code != http.StatusNotFound {
		t.Errorf("the stalled upload's meter: %d, want 404", code)
	}

	// An upload that drips, a byte well within read_timeout each time, to
	// hold the one import slot: 408 once it sends less than 1 KiB a second
	// over a read_timeout.
	drip, err := net.Dial("tcp", v.http)
	if err != nil {
		t.Fatal(err)
	}
	defer drip.Close()
	fmt.Fprintf(drip, "POST /api/v1/meters/dripping/import HTTP/1.1\r\nHost: vatio\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: 5000000\r\n\r\n", testAdminToken)
	// A first burst, as a client that starts well.
	for i := range 1500 {
		fmt.Fprintf(drip, "%d,%d\n", t0.Add(time.Duration(i)*time.Second).Unix(), 100)
	}
	answered := make(chan *http.Response, 1)
	go func() {
		resp, _ := http.ReadResponse(bufio.NewReader(drip), nil)
		answered <- resp
	}()
	var dripped *http.Response
	for i := 0; dripped == nil && i < 100; i++ {
		if _, err := drip.Write([]byte("1")); err != nil {
			break // closed: the answer is in
		}
		select {
		case dripped = <-answered:
		case <-time.After(300 * time.Millisecond):
		}
	}
	if dripped == nil {
		select {
		case dripped = <-answered:
		case <-time.After(15 * time.Second):
		}
	}
	if dripped == nil {
		t.Fatal("a dripping upload held the import for 30 s")
	}
	body, _ = io.ReadAll(dripped.Body)
	dripped.Body.Close()
	if dripped.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "slower than 1024 bytes a second") {
		t.Errorf("a dripping upload: %d %s, want 408 saying it is too slow", dripped.StatusCode, body)
	}
}

// TestConnectionsPerAddress: past the per-address caps of both ports, a
// connection is closed before a byte is read, and Vatio goes on serving
// the connections it holds and new ones once some close.
func TestConnectionsPerAddress(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("http:\n  max_connections_per_address: 4\nmqtt:\n  max_connections_per_address: 3\n"), 0o600)
	v := startVatioWith(t, t.TempDir(), cfg)
	// greet makes a held connection prove it was accepted (and counted):
	// an answer to a request, or a CONNACK.
	greetHTTP := func(conn net.Conn, _ int) error {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: vatio\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	greetMQTT := func(conn net.Conn, i int) error {
		id := fmt.Sprintf("held-%d", i)
		// MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s.
		body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
		if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
			return err
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(conn, ack); err != nil {
			return err
		}
		if ack[0] != 0x20 || ack[3] != 0 {
			return fmt.Errorf("CONNACK % x", ack)
		}
		return nil
	}
	for _, c := range []struct {
		addr  string
		cap   int
		greet func(net.Conn, int) error
	}{{v.http, 4, greetHTTP}, {v.mqtt, 3, greetMQTT}} {
		var held []net.Conn
		for i := range c.cap {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := c.greet(conn, i); err != nil {
				t.Fatalf("%s: connection %d of %d: %v", c.addr, i+1, c.cap, err)
			}
			held = append(held, conn)
		}
		extra, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		extra.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: connection %d from one address: read %v, want it closed (EOF)", c.addr, c.cap+1, err)
		}
		extra.Close()
		for _, h := range held {
			h.Close()
		}
	}
	// Both ports still serve.
	if code := getJSON(t, "http://"+v.http+"/healthz", nil); code != 200 {
		t.Errorf("healthz after the caps: %d", code)
	}
	mqtttest.Publish3(t, mqtttest.V3(t, v.mqtt), "energy/consumption", 1, false, "1.5")
}

// TestCrossSiteFormPostsRefused: a page of another site cannot make a
// visitor's browser claim a new Vatio's setup or log it in; Vatio's own
// pages (same Origin) and clients that send no Origin can.
func TestCrossSiteFormPostsRefused(t *testing.T) {
	v := startVatioEnv(t, t.TempDir(), emptyConfig(t), noToken, "")
	origin := "http://" + v.http
	const pw = "a long enough password"
	form := url.Values{"user": {"evil"}, "password": {pw}, "confirm": {pw}}
	for _, h := range [][]string{
		{"Origin", "http://attacker.example"},
		{"Origin", "http://attacker.example:" + strings.Split(v.http, ":")[1]},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		if resp := postForm(t, anon, origin+"/setup", form, h...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("setup posted with %s: %s: %d, want 403", h[0], h[1], resp.StatusCode)
		}
		if resp := postForm(t, anon, origin+"/login", form, h...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("login posted with %s: %s: %d, want 403", h[0], h[1], resp.StatusCode)
		}
	}
	form["user"] = []string{"admin"}
	if resp := postForm(t, anon, origin+"/setup", form, "Origin", origin, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setup from Vatio's own page: %d", resp.StatusCode)
	}
	if resp := postForm(t, anon, origin+"/login", url.Values{"user": {"admin"}, "password": {pw}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login without an Origin (a script): %d", resp.StatusCode)
	}
}

// TestGatewayCannotWriteAnotherDevicesMeter: a Zigbee2MQTT gateway may
// publish for the devices behind it, but not into the meter of another
// device with credentials of its own (zigbee2mqtt/boiler would feed meter
// boiler).
func TestGatewayCannotWriteAnotherDevicesMeter(t *testing.T) {
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	add := func(body string) string {
		t.Helper()
		resp, err := apiClient.Post(origin+"/api/v1/devices", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Password string }
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /api/v1/devices %s: %d", body, resp.StatusCode)
		}
		return out.Password
	}
	boilerPW := add(`{"name": "boiler"}`)
	gwPW := add(`{"name": "gw", "publish": ["zigbee2mqtt/#"]}`)
	client := func(user, pw string) paho3.Client {
		c := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + v.mqtt).SetClientID(user).
			SetUsername(user).SetPassword(pw).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: connect: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	boiler, gw := client("boiler", boilerPW), client("gw", gwPW)
	mqtttest.Publish3(t, boiler, "energy/consumption/boiler", 1, false, `{"power_w": 1500}`)
	mqtttest.Publish3(t, gw, "zigbee2mqtt/boiler", 1, false, `{"power": 9999}`)
	mqtttest.Publish3(t, gw, "zigbee2mqtt/pump", 1, false, `{"power": 777}`)
	var m struct{ Readings int }
	if getJSON(t, origin+"/api/v1/meters/pump", &m); m.Readings != 1 {
		t.Fatalf("the gateway's own meter pump: %d readings, want 1", m.Readings)
	}
	var rs struct {
		Points []struct {
			PowerW float64 `json:"power_w"`
		}
	}
	getJSON(t, origin+"/api/v1/meters/boiler/readings?step=raw", &rs)
	if len(rs.Points) != 1 || rs.Points[0].PowerW != 1500 {
		t.Errorf("meter boiler's readings: %+v, want the boiler's own 1500 W only", rs.Points)
	}
}

// TestRefusedMQTTConnectsAudited: a device's wrong password and an unknown
// device name are in the audit log with the client's address, as refused
// web log-ins are, and never the password typed.
func TestRefusedMQTTConnectsAudited(t *testing.T) {
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	resp, err := apiClient.Post(origin+"/api/v1/devices", "application/json", strings.NewReader(`{"name": "boiler"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/devices: %d", resp.StatusCode)
	}
	const wrong = "not-the-boiler-password"
	for _, user := range []string{"boiler", "nobody"} {
		c := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + v.mqtt).SetClientID(user).
			SetUsername(user).SetPassword(wrong).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
			t.Fatalf("%s with a wrong password connected", user)
		}
	}
	var audit struct {
		Entries []struct{ Who, Action, Target, Addr, Detail string }
	}
	getJSON(t, origin+"/api/v1/audit?limit=100", &audit)
	var got []string
	for _, e := range audit.Entries {
		if strings.Contains(e.Detail, wrong) {
			t.Errorf("the audit log holds the password typed: %+v", e)
		}
		if e.Action == "mqtt_refused" {
			got = append(got, e.Who+" "+e.Target+" "+e.Addr)
		}
	}
	slices.Sort(got)
	if want := []string{"boiler MQTT CONNECT 127.0.0.1", "nobody MQTT CONNECT 127.0.0.1"}; !slices.Equal(got, want) {
		t.Errorf("refused CONNECTs in the audit log: %q, want %q", got, want)
	}
}
