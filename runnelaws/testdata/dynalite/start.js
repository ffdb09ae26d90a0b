'use strict'

// start.js runs dynalite, a DynamoDB-compatible server, in memory for the
// runnelaws tests: it listens on 127.0.0.1 at a port the system picks,
// prints the port on a line of standard output once it is listening, and
// exits as soon as its standard input closes, so that a test process that
// dies never leaves it running. Tables are ACTIVE (and gone) at once.

const dynalite = require('dynalite')

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })

server.on('error', (err) => {
  process.stderr.write(`dynalite: ${err.stack || err}\n`)
  process.exit(1)
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})

process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()
