// Package need is what stacktest and stackdb share: the stack's variables
// (from the environment, then .stack/env) and how a test that needs a
// service ends when it is missing: skipped under -short (the fast layer) and
// outside CI, failed under CI=true, so CI can never pass by skipping.
package need
