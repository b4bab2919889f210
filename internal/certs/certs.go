// Package certs gives the HTTPS and MQTTS listeners their certificate:
// either from PEM files the user provides (a public CA's, or their own),
// reloaded when the files change so a renewal needs no restart, or from a
// local certificate authority Vatio makes on first start for a LAN, whose
// ca.pem devices and browsers are told to trust.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Files of the local certificate authority, in Options.Dir.
const (
	CAFile   = "ca.pem"
	caKey    = "ca-key.pem"
	leafFile = "cert.pem"
	leafKey  = "key.pem"
)

const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 397 * 24 * time.Hour // what browsers accept of a server certificate
	renewBefore  = 30 * 24 * time.Hour
	// recheck is how often the certificate files are looked at for a
	// renewal.
	recheck = 10 * time.Second
)

// errMismatch is a key that is not its certificate's: a first start
// stopped between writing the two.
var errMismatch = errors.New("key and certificate do not match")

// Options say where the certificate comes from.
type Options struct {
	// CertFile and KeyFile are PEM files of a certificate (with its chain)
	// and its key. When empty, the local authority in Dir issues one.
	CertFile, KeyFile string
	// Dir holds the local authority and the certificate it issued.
	Dir string
	// Hosts are names and addresses the issued certificate covers besides
	// localhost, this machine's name and its addresses.
	Hosts []string
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Info describes the certificate served.
type Info struct {
	// Fingerprint is the SHA-256 of the certificate, in hex pairs.
	Fingerprint string
	NotAfter    time.Time
	// Hosts are the names and addresses it covers.
	Hosts []string
	// CA is the file of the local authority to trust; empty when the
	// certificate came from CertFile.
	CA string
}

// Config returns the TLS configuration of a server (TLS 1.2 at least) and
// what its certificate is.
func Config(opts Options) (*tls.Config, Info, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &reloader{opts: opts}
	if opts.CertFile == "" {
		if err := issue(opts); err != nil {
			return nil, Info{}, err
		}
		r.local = &opts
		r.opts.CertFile, r.opts.KeyFile = filepath.Join(opts.Dir, leafFile), filepath.Join(opts.Dir, leafKey)
	}
	if err := r.load(); err != nil {
		return nil, Info{}, err
	}
	info := describe(r.cert.Leaf)
	if opts.CertFile == "" {
		info.CA = filepath.Join(opts.Dir, CAFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, info, nil
}

func describe(leaf *x509.Certificate) Info {
	sum := sha256.Sum256(leaf.Raw)
	hexed := strings.ToUpper(hex.EncodeToString(sum[:]))
	var pairs []string
	for i := 0; i < len(hexed); i += 2 {
		pairs = append(pairs, hexed[i:i+2])
	}
	hosts := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return Info{Fingerprint: strings.Join(pairs, ":"), NotAfter: leaf.NotAfter, Hosts: hosts}
}

// reloader serves the certificate of two files and reads them again when
// they change.
type reloader struct {
	opts Options
	// local, when the certificate is the local authority's, is what
	// issues it again a month before it ends, while Vatio runs.
	local   *Options
	mu      sync.Mutex
	cert    *tls.Certificate
	checked time.Time
	stamp   string
}

func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.opts.Now(); now.Sub(r.checked) >= recheck {
		r.checked = now
		if r.local != nil && now.Add(renewBefore).After(r.cert.Leaf.NotAfter) {
			if err := issue(*r.local); err != nil {
				r.opts.Logger.Warn("tls: the certificate could not be renewed", slog.Any("error", err))
			}
		}
		if s := r.fileStamp(); s != r.stamp {
			if err := r.loadLocked(); err != nil {
				// Keep serving the certificate that worked; a renewal
				// written half-way is read again on the next check.
				r.opts.Logger.Warn("tls: keeping the current certificate", slog.Any("error", err))
			}
		}
	}
	return r.cert, nil
}

// fileStamp changes when either file does.
func (r *reloader) fileStamp() string {
	var b strings.Builder
	for _, f := range []string{r.opts.CertFile, r.opts.KeyFile} {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", st.ModTime().UnixNano(), st.Size())
		}
	}
	return b.String()
}

func (r *reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = r.opts.Now()
	return r.loadLocked()
}

func (r *reloader) loadLocked() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.opts.CertFile, r.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", r.opts.CertFile, r.opts.KeyFile, err)
	}
	if now := r.opts.Now(); now.After(cert.Leaf.NotAfter) {
		return fmt.Errorf("tls: certificate %s expired on %s", r.opts.CertFile, cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	if r.cert != nil {
		r.opts.Logger.Info("tls: certificate reloaded", slog.String("file", r.opts.CertFile),
			slog.Time("not_after", cert.Leaf.NotAfter))
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// hosts returns what a certificate for this machine covers: localhost, its
// name (and name.local), its addresses and extra.
func hosts(extra []string) []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		out = append(out, h)
		if !strings.Contains(h, ".") {
			out = append(out, h+".local")
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
				out = append(out, n.IP.String())
			}
		}
	}
	out = append(out, extra...)
	slices.Sort(out)
	return slices.Compact(out)
}

// issue makes sure Dir holds a local authority and a certificate it issued
// for the hosts, valid for a month at least; it issues a new one otherwise.
func issue(opts Options) error {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	now := opts.Now()
	ca, key, err := loadCA(opts.Dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errMismatch) || (err == nil && now.Add(renewBefore).After(ca.NotAfter)) {
		ca, key, err = newCA(opts.Dir, now)
		if err == nil {
			opts.Logger.Info("tls: made a local certificate authority; have devices and browsers trust it",
				slog.String("file", filepath.Join(opts.Dir, CAFile)))
		}
	}
	if err != nil {
		return err
	}
	want := hosts(opts.Hosts)
	if leaf, err := readCert(filepath.Join(opts.Dir, leafFile)); err == nil && leaf.CheckSignatureFrom(ca) == nil &&
		now.Add(renewBefore).Before(leaf.NotAfter) && slices.Equal(describe(leaf).Hosts, sortedHosts(want)) {
		if _, err := tls.LoadX509KeyPair(filepath.Join(opts.Dir, leafFile), filepath.Join(opts.Dir, leafKey)); err == nil {
			return nil
		}
	}
	return newLeaf(opts.Dir, ca, key, want, now)
}

// sortedHosts lists hosts as describe does: names, then addresses.
func sortedHosts(hosts []string) []string {
	var names, ips []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip.String())
		} else {
			names = append(names, h)
		}
	}
	return append(names, ips...)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := readCert(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, caKey))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("tls: %s holds no PEM key", filepath.Join(dir, caKey))
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %s: %w", filepath.Join(dir, caKey), err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("tls: %s is not the key of %s: %w", filepath.Join(dir, caKey), filepath.Join(dir, CAFile), errMismatch)
	}
	return cert, key, nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func newCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Vatio"}, CommonName: "Vatio local CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if err := writePair(dir, CAFile, caKey, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Vatio"}, CommonName: "vatio"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return writePair(dir, leafFile, leafKey, der, key)
}

// writePair writes a certificate (0644) and its key (0600), each through a
// temporary file renamed into place, so a crash leaves the old pair or the
// new one.
func writePair(dir, certName, keyName string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	var kb, cb bytes.Buffer
	_ = pem.Encode(&kb, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	_ = pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(filepath.Join(dir, keyName), kb.Bytes(), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), cb.Bytes(), 0o644)
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
