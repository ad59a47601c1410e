package receivers

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/testing/internal/need"
)

//go:embed smtpd.py
var smtpdScript []byte

// SMTPServer is a running aiosmtpd that requires STARTTLS and AUTH.
type SMTPServer struct {
	// Addr is its host:port on loopback.
	Addr string
	// Roots holds the self-signed certificate it presents after STARTTLS.
	Roots *x509.CertPool
	// Username and Password are what AUTH accepts.
	Username, Password string
	dir                string
}

// Message is one message the server accepted.
type Message struct {
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	// TLS and Authenticated tell how the session that sent it went.
	TLS           bool   `json:"tls"`
	Authenticated bool   `json:"authenticated"`
	Data          string `json:"data"`
}

// SMTP starts an SMTP server on a free loopback port, stopped when the test
// ends.
func SMTP(t testing.TB, username, password string) *SMTPServer {
	t.Helper()
	need.Stack(t)
	needAiosmtpd(t)
	dir := t.TempDir()
	certFile, keyFile, roots := selfSigned(t, dir)
	script := filepath.Join(dir, "smtpd.py")
	if err := os.WriteFile(script, smtpdScript, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &SMTPServer{Addr: FreeAddr(t), Roots: roots, Username: username, Password: password,
		dir: filepath.Join(dir, "messages")}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script, "--listen", s.Addr, "--cert", certFile, "--key", keyFile,
		"--user", username, "--password", password, "--dir", s.dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, "smtpd", cmd)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("smtpd.py exited before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("smtpd.py not ready after 30s")
	}
	return s
}

// Messages returns the messages accepted so far, in order.
func (s *SMTPServer) Messages(t testing.TB) []Message {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var msgs []Message
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m.Data = strings.ReplaceAll(m.Data, "\r\n", "\n")
		msgs = append(msgs, m)
	}
	return msgs
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key,
// and returns their files and a pool holding the certificate.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sitewatch test smtpd"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}
