module github.com/runnel-go/runnel/cmd/runnel

go 1.26.0

require (
	github.com/runnel-go/runnel v0.0.0-00010101000000-000000000000
	github.com/runnel-go/runnel/server v0.0.0-00010101000000-000000000000
)

require (
	github.com/aws/smithy-go v1.28.9 // indirect
	github.com/fxamacker/cbor/v2 v2.10.0 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/time v0.16.0 // indirect
)
