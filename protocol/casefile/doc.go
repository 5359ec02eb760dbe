// Package casefile defines the plaintext that devices seal for an office:
// one versioned document per record kind, encoded as CBOR.
//
// The fleet server never sees these documents, only the sealed bytes (see
// protocol/seal). A device fills a document, encodes it with [Encode] and
// seals the result for the destination office; the office's bridge opens the
// body and reads it back with [Decode]. Everything personal about a capture
// (plate, photos' blob ids, quality values, contact details) lives here and
// nowhere in the record's routing metadata.
//
// Kinds and their documents:
//
//	kiosk.application   [Application]  ID-document application at a kiosk
//	enforcement.notice  [Notice]       parking or traffic notice of a warden
//	roadwork.report     [Report]       road-damage report of a crew or citizen
//
// Large parts (face images, fingerprints, the signature, evidence photos)
// travel as sealed blobs of the record; a document names them by blob id.
//
// Every document carries its version in the field v (CBOR key 1). Changes
// within a version are additive: new fields get new keys, and a decoder skips
// keys it does not know, so an older bridge reads a newer device's document.
// A change that is not additive needs a new kind name.
//
// History:
//
//	1  2026-12-01  first version: Application, Notice, Report.
//
// Errors are [*protocol.Error] values wrapping the protocol's sentinels, and
// they name fields, never their values: a reason may end up in a dead-letter
// list that administrators read.
package casefile
