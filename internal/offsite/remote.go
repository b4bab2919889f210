// Package offsite ships backups and archive files to S3-compatible object
// storage (AWS S3, MinIO, Backblaze B2, Wasabi, ...), so that they survive
// the loss of the machine and its SD card, and fetches them back for a
// restore.
//
// Every object is encrypted on this machine with AES-256-GCM (package
// crypt) before it leaves: the storage provider holds only ciphertext. A
// file already encrypted with the key goes as it is; a plain one (written
// before the key was set) is encrypted as it streams. The bucket keeps its
// own retention: the newest KeepBackups backups, and archives for
// KeepArchives after their month; the archives of an erased meter are
// deleted there too.
//
// Layout under Prefix:
//
//	backups/vatio-20261125T101500Z.db.enc
//	archive/<meter>/<meter>-2026-01.csv.gz.enc
package offsite

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/store"
)

// Options configure the remote.
type Options struct {
	// Endpoint is the storage's host[:port]; Insecure speaks plain HTTP
	// to it (a MinIO on the LAN).
	Endpoint string
	Insecure bool
	Region   string
	Bucket   string
	// Prefix starts every object's name, as a folder: "vatio/".
	Prefix               string
	AccessKey, SecretKey string
	// Key encrypts every object; it is required.
	Key *crypt.Key
	// KeepBackups is how many backups the bucket keeps (the newest); 0
	// keeps them all. KeepArchives is how long after its month an archive
	// is kept there; 0 keeps them for ever.
	KeepBackups  int
	KeepArchives time.Duration
	// Attempts is how many times a failed request is tried (default 5),
	// Backoff the wait before the first retry, doubling (default 2 s).
	Attempts int
	Backoff  time.Duration
	// Transport, if set, carries the requests (tests).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Now       func() time.Time
}

// errForeignKey is a local file encrypted with a key other than ours.
var errForeignKey = errors.New("not our key")

// Remote is the bucket.
type Remote struct {
	cl   *minio.Client
	opts Options
}

// New returns the remote of opts; it does not connect yet.
func New(opts Options) (*Remote, error) {
	if opts.Key == nil {
		return nil, errors.New("offsite: copies are encrypted here first: set encryption.key")
	}
	if opts.Endpoint == "" || opts.Bucket == "" {
		return nil, errors.New("offsite: endpoint and bucket are required")
	}
	opts.Prefix = strings.TrimPrefix(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	opts.Attempts = cmp.Or(opts.Attempts, 5)
	opts.Backoff = cmp.Or(opts.Backoff, 2*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cl, err := minio.New(opts.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:     !opts.Insecure,
		Region:     opts.Region,
		Transport:  opts.Transport,
		MaxRetries: 1, // retries are ours (retry), with a backoff fit for a flaky uplink
	})
	if err != nil {
		return nil, fmt.Errorf("offsite: %w", err)
	}
	return &Remote{cl: cl, opts: opts}, nil
}

// retry runs fn until it succeeds, ctx ends or the attempts run out,
// waiting Backoff, then twice as long, between tries.
func (r *Remote) retry(ctx context.Context, what string, fn func() error) error {
	wait := r.opts.Backoff
	var err error
	for i := range r.opts.Attempts {
		if err = fn(); err == nil {
			return nil
		}
		var resp minio.ErrorResponse
		if errors.Is(err, errForeignKey) {
			break
		}
		if errors.As(err, &resp) && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound ||
			resp.Code == "NoSuchBucket" || resp.Code == "NoSuchKey" || resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch") {
			break // retrying would not help
		}
		if i == r.opts.Attempts-1 {
			break
		}
		r.opts.Logger.Debug("offsite: retrying", slog.String("what", what), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
	return fmt.Errorf("offsite: %s: %w", what, err)
}

// put uploads the file at local as object name, encrypted.
func (r *Remote) put(ctx context.Context, local, name string) error {
	return r.retry(ctx, "upload "+name, func() error {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		br := bufio.NewReaderSize(f, 64<<10)
		var body io.Reader = br
		size := st.Size()
		if id, ok := crypt.KeyID(br); ok {
			if id != r.opts.Key.ID() {
				return fmt.Errorf("%s is encrypted with another key (%s): %w", local, id, errForeignKey)
			}
		} else {
			// Plain on disk (written before the key was set): encrypt
			// as it streams, with the length known in advance.
			pr, pw := io.Pipe()
			go func() {
				cw, err := crypt.NewWriter(pw, r.opts.Key)
				if err == nil {
					_, err = io.Copy(cw, br)
				}
				if err == nil {
					err = cw.Close()
				}
				pw.CloseWithError(err)
			}()
			defer pr.Close()
			body, size = pr, crypt.SealedSize(size)
		}
		_, err = r.cl.PutObject(ctx, r.opts.Bucket, r.opts.Prefix+name, body, size,
			minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: size < 512<<20, PartSize: 64 << 20})
		return err
	})
}

// Object is a file in the bucket.
type Object struct {
	// Name is relative to the prefix: backups/..., archive/<meter>/...
	Name     string
	Size     int64
	Modified time.Time
}

// list returns the objects under the prefix and dir ("backups/" or
// "archive/").
func (r *Remote) list(ctx context.Context, dir string) ([]Object, error) {
	var out []Object
	err := r.retry(ctx, "list "+dir, func() error {
		out = out[:0]
		for o := range r.cl.ListObjects(ctx, r.opts.Bucket, minio.ListObjectsOptions{Prefix: r.opts.Prefix + dir, Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
			out = append(out, Object{Name: strings.TrimPrefix(o.Key, r.opts.Prefix), Size: o.Size, Modified: o.LastModified})
		}
		return nil
	})
	return out, err
}

func (r *Remote) remove(ctx context.Context, name string) error {
	return r.retry(ctx, "delete "+name, func() error {
		return r.cl.RemoveObject(ctx, r.opts.Bucket, r.opts.Prefix+name, minio.RemoveObjectOptions{})
	})
}

// markerName is the object that says whose copies the prefix holds.
const markerName = "VATIO-OWNER"

// claim makes sure the prefix holds this key's copies: it writes the
// marker (the key's id, which reveals nothing of the key) when there is
// none, and refuses a prefix another Vatio (another key) uses, whose
// backups the retention here would otherwise delete.
func (r *Remote) claim(ctx context.Context) error {
	var owner []byte
	err := r.retry(ctx, "read "+markerName, func() error {
		o, err := r.cl.GetObject(ctx, r.opts.Bucket, r.opts.Prefix+markerName, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer o.Close()
		owner, err = io.ReadAll(io.LimitReader(o, 256))
		return err
	})
	var resp minio.ErrorResponse
	switch {
	case err == nil && strings.TrimSpace(string(owner)) == r.opts.Key.ID():
		return nil
	case err == nil:
		return fmt.Errorf("offsite: %s%s holds another Vatio's copies (key %s): give this one its own offsite.prefix",
			r.opts.Bucket+"/", r.opts.Prefix, strings.TrimSpace(string(owner)))
	case errors.As(err, &resp) && resp.Code == "NoSuchKey":
	default:
		return err
	}
	id := r.opts.Key.ID() + "\n"
	return r.retry(ctx, "write "+markerName, func() error {
		_, err := r.cl.PutObject(ctx, r.opts.Bucket, r.opts.Prefix+markerName, strings.NewReader(id), int64(len(id)),
			minio.PutObjectOptions{ContentType: "text/plain"})
		return err
	})
}

// Backups lists the backups in the bucket, newest first.
func (r *Remote) Backups(ctx context.Context) ([]Object, error) {
	objs, err := r.list(ctx, "backups/")
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, o := range objs {
		if _, ok := store.ParseBackupName(strings.TrimSuffix(path.Base(o.Name), store.EncryptedSuffix)); ok {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

// Fetch writes the decrypted content of the backup name (as Backups
// lists it, or just its file name; "latest" for the newest) to w, and
// returns its name. A damaged or cut object fails with crypt.ErrDamaged.
func (r *Remote) Fetch(ctx context.Context, name string, w io.Writer) (string, error) {
	if name == "latest" {
		bs, err := r.Backups(ctx)
		if err != nil {
			return "", err
		}
		if len(bs) == 0 {
			return "", errors.New("offsite: the bucket holds no backup")
		}
		name = bs[0].Name
	}
	if !strings.Contains(name, "/") {
		name = "backups/" + name
	}
	var obj *minio.Object
	err := r.retry(ctx, "download "+name, func() error {
		o, err := r.cl.GetObject(ctx, r.opts.Bucket, r.opts.Prefix+name, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		if _, err := o.Stat(); err != nil {
			o.Close()
			return err
		}
		obj = o
		return nil
	})
	if err != nil {
		return "", err
	}
	defer obj.Close()
	cr, err := crypt.NewReader(obj, r.opts.Key)
	if err != nil {
		return "", fmt.Errorf("offsite: %s: %w", name, err)
	}
	if _, err := io.Copy(w, cr); err != nil {
		return "", fmt.Errorf("offsite: %s: %w", name, err)
	}
	return name, nil
}
