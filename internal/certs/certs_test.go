package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// handshake serves cfg on loopback and connects a client trusting roots to
// serverName; it returns the handshake's error and the certificate seen.
func handshake(t *testing.T, cfg *tls.Config, roots *x509.CertPool, serverName string) (*x509.Certificate, error) {
	return handshakeAt(t, cfg, roots, serverName, time.Now)
}

// handshakeAt is handshake with the client's clock at now.
func handshakeAt(t *testing.T, cfg *tls.Config, roots *x509.CertPool, serverName string, now func() time.Time) (*x509.Certificate, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName, Time: now})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(raw) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

func TestLocalAuthority(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	opts := Options{Dir: dir, Hosts: []string{"vatio.example.lan", "192.0.2.7"}, Now: func() time.Time { return now }}
	cfg, info, err := Config(opts)
	if err != nil {
		t.Fatal(err)
	}
	if info.CA != filepath.Join(dir, CAFile) {
		t.Errorf("CA = %q", info.CA)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "vatio.example.lan", "192.0.2.7"} {
		if !contains(info.Hosts, h) {
			t.Errorf("the certificate does not cover %s: %v", h, info.Hosts)
		}
	}
	for name, perm := range map[string]os.FileMode{caKey: 0o600, leafKey: 0o600, CAFile: 0o644, leafFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), perm)
		}
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %v, want 0700", dir, st.Mode().Perm())
	}

	roots := pool(t, info.CA)
	for _, name := range []string{"localhost", "vatio.example.lan", "192.0.2.7"} {
		if _, err := handshakeAt(t, cfg, roots, name, opts.Now); err != nil {
			t.Errorf("a client trusting ca.pem cannot reach %s: %v", name, err)
		}
	}
	if _, err := handshake(t, cfg, roots, "other.example.lan"); err == nil {
		t.Error("the certificate was accepted for a host it does not cover")
	}
	if _, err := handshake(t, cfg, x509.NewCertPool(), "localhost"); err == nil {
		t.Error("a client that does not trust the local authority accepted its certificate")
	}

	// The next start keeps the certificate.
	_, again, err := Config(opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != info.Fingerprint {
		t.Error("a second start issued a new certificate for the same hosts")
	}

	// A new address, or a certificate near its end, gets a new certificate
	// from the same authority: devices keep trusting ca.pem.
	caBefore, _ := os.ReadFile(info.CA)
	opts.Hosts = append(opts.Hosts, "192.0.2.8")
	_, moved, err := Config(opts)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Fingerprint == info.Fingerprint || !contains(moved.Hosts, "192.0.2.8") {
		t.Errorf("a new address did not give a new certificate: %v", moved.Hosts)
	}
	now = now.Add(leafLifetime - renewBefore + time.Hour)
	cfg, later, err := Config(opts)
	if err != nil {
		t.Fatal(err)
	}
	if later.Fingerprint == moved.Fingerprint || !later.NotAfter.After(now.Add(renewBefore)) {
		t.Errorf("a certificate near its end (%s) was not renewed", moved.NotAfter)
	}
	if caAfter, _ := os.ReadFile(info.CA); string(caAfter) != string(caBefore) {
		t.Error("renewing the certificate replaced the authority")
	}
	if _, err := handshakeAt(t, cfg, roots, "localhost", opts.Now); err != nil {
		t.Errorf("the old ca.pem does not verify the renewed certificate: %v", err)
	}
}

// A key written without its certificate (a first start stopped half-way)
// gives a new authority rather than a failure on every start.
func TestLocalAuthorityRepairsHalfWrittenFiles(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Config(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, _, err := Config(Options{Dir: other}); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(other, caKey))
	if err := os.WriteFile(filepath.Join(dir, caKey), key, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, info, err := Config(Options{Dir: dir})
	if err != nil {
		t.Fatalf("mismatched files: %v", err)
	}
	if _, err := handshake(t, cfg, pool(t, info.CA), "localhost"); err != nil {
		t.Error(err)
	}
}

// Files given by the user are read again when they change: a renewal by
// certbot needs no restart. A broken renewal keeps the old certificate.
func TestFilesReload(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	_, infoA, err := Config(Options{Dir: a})
	if err != nil {
		t.Fatal(err)
	}
	_, infoB, err := Config(Options{Dir: b})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	copyFile(t, filepath.Join(a, leafFile), certFile)
	copyFile(t, filepath.Join(a, leafKey), keyFile)

	now := time.Now()
	cfg, info, err := Config(Options{CertFile: certFile, KeyFile: keyFile, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if info.Fingerprint != infoA.Fingerprint || info.CA != "" {
		t.Fatalf("info = %+v", info)
	}
	both := pool(t, infoA.CA)
	both.AppendCertsFromPEM(mustRead(t, infoB.CA))

	copyFile(t, filepath.Join(b, leafFile), certFile)
	copyFile(t, filepath.Join(b, leafKey), keyFile)
	seen, err := handshake(t, cfg, both, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(seen).Fingerprint; got != infoA.Fingerprint {
		t.Error("the files were read again before the recheck interval")
	}
	now = now.Add(recheck)
	if seen, err = handshake(t, cfg, both, "localhost"); err != nil {
		t.Fatal(err)
	}
	if got := describe(seen).Fingerprint; got != infoB.Fingerprint {
		t.Error("a renewed certificate was not served after the recheck interval")
	}

	if err := os.WriteFile(keyFile, []byte("half a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(recheck)
	if seen, err = handshake(t, cfg, both, "localhost"); err != nil {
		t.Fatalf("a broken renewal broke the service: %v", err)
	}
	if got := describe(seen).Fingerprint; got != infoB.Fingerprint {
		t.Error("a broken renewal replaced the working certificate")
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, _, err := Config(Options{CertFile: cert, KeyFile: key}); err == nil {
		t.Error("missing files were accepted")
	}
	os.WriteFile(cert, []byte("not a certificate"), 0o644)
	os.WriteFile(key, []byte("not a key"), 0o600)
	if _, _, err := Config(Options{CertFile: cert, KeyFile: key}); err == nil {
		t.Error("files that are not PEM were accepted")
	}
}

// openssl, where installed, trusts ca.pem too: what mosquitto and most
// device firmware use.
func TestOpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	_, info, err := Config(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "verify", "-CAfile", info.CA, "-verify_hostname", "localhost",
		filepath.Join(dir, leafFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, mustRead(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A Vatio that runs for a year renews the local authority's certificate a
// month before it ends, without a restart.
func TestLocalAuthorityRenewsWhileRunning(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg, info, err := Config(Options{Dir: t.TempDir(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	roots := pool(t, info.CA)
	now = now.Add(leafLifetime - renewBefore + time.Hour)
	seen, err := handshakeAt(t, cfg, roots, "localhost", clock)
	if err != nil {
		t.Fatalf("a month before the end: %v", err)
	}
	if d := describe(seen); d.Fingerprint == info.Fingerprint || !d.NotAfter.After(now.Add(renewBefore)) {
		t.Errorf("not renewed while running: %s, ends %s", d.Fingerprint, d.NotAfter)
	}
}
