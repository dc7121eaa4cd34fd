package s3cache

import (
	"context"
	"errors"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"nixpush/cache"
	"nixpush/retry"
)

// throttleCodes are the S3 error codes that ask a client to slow down
// (the SDK's own list of throttling codes, as S3 and S3-compatible
// servers send them).
var throttleCodes = map[string]bool{
	"SlowDown":                               true,
	"Throttling":                             true,
	"ThrottlingException":                    true,
	"ThrottledException":                     true,
	"RequestThrottledException":              true,
	"RequestThrottled":                       true,
	"TooManyRequests":                        true,
	"TooManyRequestsException":               true,
	"RequestLimitExceeded":                   true,
	"BandwidthLimitExceeded":                 true,
	"ProvisionedThroughputExceededException": true,
	"PriorRequestNotComplete":                true,
}

// throttledAnswer reports an answer that asks for fewer requests, with
// its Retry-After. Any 503 is one: S3 sends SlowDown as 503, and the
// answer to a HEAD has no body, hence no code (it arrives as
// "ServiceUnavailable"). A 503 that is an outage instead is waited out
// as throttling for retry.Throttle's ten minutes before it counts as a
// failure.
func throttledAnswer(err error) (bool, time.Duration) {
	status := httpStatus(err)
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable && !throttleCodes[errorCode(err)] {
		return false, 0
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil {
		return true, retry.ParseRetryAfter(re.Response.Header, time.Now())
	}
	return true, 0
}

// call runs one S3 request, op, through the bucket's Limiter: within its
// bound of requests in flight, and again, after the wait throttling
// calls for, while the server throttles it. Throttled answers are
// counted, never returned unless the server kept throttling for
// retry.Throttle's whole budget.
func (c *Cache) call(ctx context.Context, op func() error) error {
	return c.limiter.Do(ctx, func() error {
		err := op()
		if err == nil {
			return nil
		}
		if ok, after := throttledAnswer(err); ok {
			c.requests.CountThrottled()
			return retry.Throttled(err, after)
		}
		return err
	})
}

// Requests is what this cache has sent, by kind, with the throttled
// answers and the bound its bucket's Limiter holds now.
func (c *Cache) Requests() cache.Requests {
	r := c.requests.Snapshot()
	r.Limit = c.limiter.Limit()
	return r
}
