// The scenario the Go test TestJavaScriptSDK runs against a runnel server
// (RUNNEL_ENDPOINT), with the client's default request handler (HTTP/2)
// or, with RUNNEL_HTTP1=1, over HTTP/1.1. It prints one JSON line with
// what it saw, or fails with a message.
import {
  KinesisClient, CreateStreamCommand, DescribeStreamSummaryCommand, PutRecordCommand, PutRecordsCommand,
  ListShardsCommand, GetShardIteratorCommand, GetRecordsCommand, RegisterStreamConsumerCommand,
  SubscribeToShardCommand, DeleteStreamCommand, ResourceNotFoundException,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const config = {
  endpoint: process.env.RUNNEL_ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: "runnel", secretAccessKey: "runnel" },
};
if (process.env.RUNNEL_HTTP1 === "1") {
  config.requestHandler = new NodeHttpHandler();
}
const k = new KinesisClient(config);
const StreamName = "js";
const seen = {};

await k.send(new CreateStreamCommand({ StreamName, ShardCount: 1 }));
const d = await k.send(new DescribeStreamSummaryCommand({ StreamName }));
seen.status = d.StreamDescriptionSummary.StreamStatus;
const one = await k.send(new PutRecordCommand({ StreamName, PartitionKey: "k", Data: new TextEncoder().encode("one") }));
seen.shardId = one.ShardId;
const many = await k.send(new PutRecordsCommand({
  StreamName,
  Records: ["two", "three"].map((s) => ({ PartitionKey: "k", Data: new TextEncoder().encode(s) })),
}));
seen.failed = many.FailedRecordCount;
const shards = await k.send(new ListShardsCommand({ StreamName }));
seen.shards = shards.Shards.map((s) => s.ShardId);
const it = await k.send(new GetShardIteratorCommand({ StreamName, ShardId: one.ShardId, ShardIteratorType: "TRIM_HORIZON" }));
const recs = await k.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
seen.polled = recs.Records.map((r) => new TextDecoder().decode(r.Data));
seen.arrivalIsDate = recs.Records[0].ApproximateArrivalTimestamp instanceof Date;

const reg = await k.send(new RegisterStreamConsumerCommand({ StreamARN: d.StreamDescriptionSummary.StreamARN, ConsumerName: "js-consumer" }));
const sub = await k.send(new SubscribeToShardCommand({
  ConsumerARN: reg.Consumer.ConsumerARN, ShardId: one.ShardId, StartingPosition: { Type: "TRIM_HORIZON" },
}));
seen.pushed = [];
let wrote = false;
for await (const ev of sub.EventStream) {
  if (!ev.SubscribeToShardEvent) continue;
  for (const r of ev.SubscribeToShardEvent.Records) seen.pushed.push(new TextDecoder().decode(r.Data));
  seen.continuation = ev.SubscribeToShardEvent.ContinuationSequenceNumber !== undefined;
  if (!wrote) {
    wrote = true;
    await k.send(new PutRecordCommand({ StreamName, PartitionKey: "k", Data: new TextEncoder().encode("four") }));
  }
  if (seen.pushed.length >= 4) break;
}

await k.send(new DeleteStreamCommand({ StreamName, EnforceConsumerDeletion: true }));
try {
  await k.send(new DescribeStreamSummaryCommand({ StreamName }));
  seen.deleted = false;
} catch (e) {
  seen.deleted = e instanceof ResourceNotFoundException;
}
k.destroy();
console.log(JSON.stringify(seen));
