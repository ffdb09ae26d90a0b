package runnelaws

import "github.com/runnel-go/runnel"

// The adapter implements every seam it is made for.
var (
	_ runnel.Putter          = (*Stream)(nil)
	_ runnel.StreamDescriber = (*Stream)(nil)
	_ runnel.StreamReader    = (*Stream)(nil)
	_ runnel.FanOutReader    = (*Stream)(nil)
)
