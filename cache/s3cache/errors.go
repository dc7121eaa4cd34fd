package s3cache

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"nixpush/retry"
)

// transientCodes are S3 error codes that a later attempt can get past,
// whatever their HTTP status.
var transientCodes = map[string]bool{
	"SlowDown":             true,
	"Throttling":           true,
	"ThrottlingException":  true,
	"RequestLimitExceeded": true,
	"TooManyRequests":      true,
	"RequestTimeout":       true, // 400: the server gave up on a slow body
	"InternalError":        true,
	"ServiceUnavailable":   true,
	"OperationAborted":     true, // 409: a conflicting operation on the same key
	// 409 to one of two conditional writes racing on one key (AWS):
	// the next try meets the winner's object.
	"ConditionalRequestConflict": true,
	"NoSuchUpload":               true, // the multipart upload vanished: a new Put starts over
	"InvalidPart":                true, // a part went missing on the server's side
	"IncompleteBody":             true, // the connection dropped mid-body
	"RequestTimeoutException":    true,
}

// authCodes are refusals of the credentials themselves.
var authCodes = map[string]bool{
	"AccessDenied":          true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"TokenRefreshRequired":  true,
	"AllAccessDisabled":     true,
	"AccountProblem":        true,
	"InvalidSecurity":       true,
	"XAdminUserNotFound":    true, // versitygw's answer (404) to an unknown access key
}

// httpStatus is the HTTP status of a failed call, 0 when no response came.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode is the S3 error code ("NoSuchKey", "AccessDenied"...), or "".
// Responses to HEAD have no body: their code is derived from the status
// ("NotFound", "Forbidden").
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// missingObject reports a 404 for the object itself, not for its bucket
// (NoSuchBucket) or an unknown user (versitygw's XAdminUserNotFound).
func missingObject(err error) bool {
	if httpStatus(err) != http.StatusNotFound {
		return false
	}
	switch errorCode(err) {
	case "NoSuchKey", "NotFound", "":
		return true
	}
	return false
}

// isCredentialsError reports a request that was never sent because the
// credential chain found nothing (or failed to refresh). The SDK has no
// error type for it in every version: older ones fail in the signer,
// newer ones in identity resolution, with a plain wrapped error.
func isCredentialsError(err error) bool {
	var se *v4.SigningError
	if errors.As(err, &se) {
		return true
	}
	return httpStatus(err) == 0 && (strings.Contains(err.Error(), "get identity: get credentials:") ||
		strings.Contains(err.Error(), "failed to retrieve credentials"))
}

// classify applies the Cache error contract to an SDK error: refusals that
// retrying cannot fix are wrapped with retry.Permanent and say what to
// fix; throttling, server errors and network failures (no response at
// all: timeouts, resets, refused connections, DNS) stay plain, i.e.
// transient. op names what failed ("put nar/x.nar"). SDK errors carry the
// code, status and request id, never the credentials.
func (c *Cache) classify(op string, err error) error {
	if retry.IsPermanent(err) {
		return err
	}
	status, code := httpStatus(err), errorCode(err)
	err = c.reword(err)
	permanent := func(format string, args ...any) error {
		return retry.Permanent(fmt.Errorf("%s: %s: %w", op, fmt.Sprintf(format, args...), err))
	}
	switch {
	case code == "NoSuchBucket":
		return permanent("bucket %q does not exist at %s: create it or fix the cache URL", c.bucket, c)
	case code == "RequestTimeTooSkewed":
		return permanent("the clock differs too much from %s's: fix the system clock", c)
	case transientCodes[code], status == 0, status == http.StatusRequestTimeout,
		status == http.StatusTooManyRequests, status >= 500:
		return fmt.Errorf("%s: %w", op, err)
	case status == http.StatusUnauthorized, status == http.StatusForbidden, authCodes[code]:
		return permanent("access denied by %s: check AWS credentials / profile and the bucket policy", c)
	case code == "PermanentRedirect", code == "AuthorizationHeaderMalformed",
		code == "IllegalLocationConstraintException", status == http.StatusMovedPermanently:
		return permanent("bucket %q is in another region: set ?region= in the cache URL", c.bucket)
	case code == "EntityTooLarge":
		return permanent("object too large for %s", c)
	case status >= 400 && status < 500:
		return permanent("request refused by %s", c)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// sdkError is an SDK error in words that fit this cache: the SDK's own
// text says "https response error" whatever the endpoint's scheme, and
// repeats empty fields ("RequestID: , HostID: ,"). errors.As and
// errors.Is see the SDK error inside.
type sdkError struct {
	err    error
	server string // the endpoint URL, or "AWS"
}

// reword wraps an SDK error into an sdkError; other errors pass as they
// are.
func (c *Cache) reword(err error) error {
	var oe *smithy.OperationError
	if err == nil || !errors.As(err, &oe) {
		return err
	}
	server := c.endpoint
	if server == "" {
		server = "AWS"
	}
	return &sdkError{err: err, server: server}
}

func (e *sdkError) Unwrap() error { return e.err }

// Error is "S3 PutObject: 403 Forbidden from http://host:port (request id
// R): api error AccessDenied: Access Denied.", or for a request that got
// no response "S3 PutObject: request send failed, PUT http://...: ...".
func (e *sdkError) Error() string {
	var oe *smithy.OperationError
	var re *awshttp.ResponseError
	if !errors.As(e.err, &oe) {
		return e.err.Error()
	}
	op := oe.Service() + " " + oe.Operation()
	if !errors.As(e.err, &re) {
		return fmt.Sprintf("%s: %v", op, oe.Err)
	}
	if re.HTTPStatusCode() == 0 {
		return fmt.Sprintf("%s: %v", op, re.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d %s from %s", op, re.HTTPStatusCode(), http.StatusText(re.HTTPStatusCode()), e.server)
	var ids []string
	if re.RequestID != "" {
		ids = append(ids, "request id "+re.RequestID)
	}
	var host interface{ ServiceHostID() string }
	if errors.As(e.err, &host) && host.ServiceHostID() != "" {
		ids = append(ids, "host id "+host.ServiceHostID())
	}
	if len(ids) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(ids, ", "))
	}
	if re.Err != nil {
		fmt.Fprintf(&b, ": %v", re.Err)
	}
	return b.String()
}
