// Package runnelaws runs code written against runnel on Amazon Kinesis
// Data Streams: Stream adapts a Kinesis client of the AWS SDK for Go v2 to
// the seams of runnel's Producer (runnel.Putter), Consumer and ShardReader
// (runnel.StreamReader, runnel.FanOutReader), and LeaseTable keeps a
// consumer group's leases in a DynamoDB table laid out as the Kinesis
// Client Library lays out its own.
package runnelaws
