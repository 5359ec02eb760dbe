package protocol

// Limits on the wire. A decoder refuses anything larger with ErrTooLarge
// before it allocates for it; an encoder refuses to produce it.
const (
	// MaxMessageSize bounds a whole encoded envelope. Brokers must accept
	// MQTT packets of at least this size plus the topic.
	MaxMessageSize = 1 << 20

	// MaxDeviceIDLen bounds a device id; see ValidateDeviceID.
	MaxDeviceIDLen = 64
	// MaxNameLen bounds identifiers such as a record kind, an office, a
	// command name, a blob role or a peripheral name.
	MaxNameLen = 64
	// MaxTextLen bounds free text: reasons, notes, messages, versions.
	MaxTextLen = 1024

	// MaxSealedBody bounds the sealed personal body of a record. Large
	// captures (photos, fingerprints) travel as blobs, not in the body.
	MaxSealedBody = 768 << 10
	// MaxMetaEntries, MaxMetaKeyLen and MaxMetaValueLen bound the
	// non-personal metadata of a record.
	MaxMetaEntries  = 32
	MaxMetaKeyLen   = 64
	MaxMetaValueLen = 512

	// MaxBlobsPerRecord bounds the blob references of one record.
	MaxBlobsPerRecord = 16
	// MaxBlobSize bounds one blob (photos and fingerprints are 50 KiB to
	// 5 MiB).
	MaxBlobSize = 32 << 20
	// DefaultChunkSize is the chunk size devices use unless configured.
	DefaultChunkSize = 64 << 10
	// MaxChunkData bounds the data of one BlobChunk.
	MaxChunkData = 256 << 10

	// MaxAckItems bounds the record and the chunk entries of one Ack, and
	// the entries of one RecordStatus.
	MaxAckItems = 1024
	// MaxGaps bounds the ranges and the blob entries of one SyncState.
	MaxGaps = 1024
	// MaxPeripherals bounds the peripherals in one Heartbeat.
	MaxPeripherals = 32
	// MaxCommandArgs bounds the arguments of one Command.
	MaxCommandArgs = 32
	// MaxCommandOutput bounds the output of one CommandResult.
	MaxCommandOutput = 512 << 10

	// maxNesting, maxArray and maxMapPairs bound any CBOR item, including
	// free-form twin configuration.
	maxNesting  = 16
	maxArray    = 4096
	maxMapPairs = 1024
)
