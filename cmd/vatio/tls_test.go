package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

var mqttsLine = regexp.MustCompile(`msg="vatio ready".* tls=true mqtts=(\S+)`)

// With tls.enabled and no certificate given, a first start makes a local
// authority; a client trusting its ca.pem reads the API over HTTPS (with
// HSTS) and a meter publishes over MQTTS. Plain HTTP is not served on the
// port, and the keys and database are readable by their owner only.
func TestTLSFirstStart(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("tls:\n  enabled: true\n  hsts: true\n  hosts: [vatio.test]\nmqtt:\n  tls_addr: \"127.0.0.1:0\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startVatioWith(t, dir, cfg)
	m := mqttsLine.FindStringSubmatch(inst.logs.String())
	if m == nil {
		t.Fatalf("no MQTTS address in the ready line:\n%s", inst.logs)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	trust := &tls.Config{RootCAs: pool, ServerName: "vatio.test"}

	client := &http.Client{Transport: bearer{&http.Transport{TLSClientConfig: trust}}, Timeout: 10 * time.Second}
	base := "https://" + inst.http
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS with the local authority trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("healthz: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("connection state %+v", resp.TLS)
	}
	if _, err := apiClient.Get("http://" + inst.http + "/healthz"); err == nil {
		t.Error("plain HTTP was answered on the HTTPS port")
	}
	// The session cookie of the setup (then of every login) is Secure
	// under HTTPS, as well as HttpOnly and SameSite.
	setup := &http.Client{Transport: &http.Transport{TLSClientConfig: trust}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = setup.PostForm(base+"/setup", url.Values{"user": {"admin"}, "password": {"a long enough password"}, "confirm": {"a long enough password"}, "token": {testAdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"vatio_session=", "secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie under HTTPS lacks %s: %q (status %d)", want, cookie, resp.StatusCode)
		}
	}
	untrusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "vatio.test"}}}
	if _, err := untrusting.Get(base + "/healthz"); err == nil {
		t.Error("a client that does not trust the local authority accepted the certificate")
	}

	// A meter on MQTTS; its reading comes back over HTTPS.
	opts := paho3.NewClientOptions().AddBroker("ssl://" + m[1]).SetClientID("tls-meter").SetTLSConfig(trust).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTTS connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	mqtttest.Publish3(t, c, "energy/consumption/secure", 1, false, "1.25")
	var readings []struct {
		Value float64 `json:"consumption"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(readings) == 0 && time.Now().Before(deadline) {
		resp, err := client.Get(base + "/api/energy")
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON(resp, &readings); err != nil {
			t.Fatal(err)
		}
	}
	if len(readings) != 1 || readings[0].Value != 1.25 {
		t.Errorf("readings over HTTPS: %+v", readings)
	}

	for _, f := range []string{"tls/ca-key.pem", "tls/key.pem", "vatio.db"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func decodeJSON(resp *http.Response, into any) error {
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
