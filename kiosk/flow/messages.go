package flow

// Message keys the flow puts in View.Message. The UI looks each up in the
// message catalogue (kiosk/i18n) and fills View.Args into its
// placeholders; MessageKeys lists them all, so that a test of the
// catalogue can check that none is missing.
const (
	// MsgWelcome: the idle screen, "touch the screen to start".
	MsgWelcome = "welcome.touch"
	// MsgLanguage: choose a language (step 1).
	MsgLanguage = "language.choose"
	// MsgDocuments: choose one or more documents (step 2).
	MsgDocuments = "documents.choose"
	// MsgDocumentsNone: Next was pressed with no document chosen.
	MsgDocumentsNone = "documents.none-chosen"

	// MsgIdentifyStart: connecting to the eID service (step 3).
	MsgIdentifyStart = "identify.start"
	// MsgIdentifyInsertCard: place the ID card on the reader.
	MsgIdentifyInsertCard = "identify.insert-card"
	// MsgIdentifyEnterPIN: type the six-digit PIN on the screen (send
	// EnterPIN).
	MsgIdentifyEnterPIN = "identify.enter-pin"
	// MsgIdentifyEnterPINReader: type the PIN on the card reader's keypad.
	MsgIdentifyEnterPINReader = "identify.enter-pin-reader"
	// MsgIdentifyWrongPIN: the PIN was wrong; Args "left" is the number
	// of attempts left.
	MsgIdentifyWrongPIN = "identify.wrong-pin"
	// MsgIdentifyCardDeactivated: the card's online function is switched
	// off; another card or Skip.
	MsgIdentifyCardDeactivated = "identify.card-deactivated"
	// MsgIdentifyReading: the card is being read; keep it on the reader.
	MsgIdentifyReading = "identify.reading"
	// MsgIdentifyFailed: identification did not work; the flow goes on
	// without it and the clerk checks the ID at the counter.
	MsgIdentifyFailed = "identify.failed"

	// MsgPhotoStarting: the camera is starting (step 4).
	MsgPhotoStarting = "photo.starting"
	// MsgPhotoLook: look into the camera; View.Guidance says what to
	// change.
	MsgPhotoLook = "photo.look"
	// MsgPhotoRetry: no usable photo this time; Retry or Skip (Attempt and
	// Attempts say how many tries were used).
	MsgPhotoRetry = "photo.retry"
	// MsgPhotoChoose: pick one of View.Candidates (step 4b).
	MsgPhotoChoose = "photo.choose"

	// MsgFingerRight and MsgFingerLeft: put the right (left) index finger
	// on the scanner (steps 5 and 6).
	MsgFingerRight = "finger.place-right"
	MsgFingerLeft  = "finger.place-left"
	// MsgFingerLow: the print was not clear enough; Retry or Skip.
	MsgFingerLow = "finger.low-quality"
	// MsgFingerNone: no finger came to the scanner in time; Retry or Skip.
	MsgFingerNone = "finger.no-finger"
	// MsgFingerImageFailed: the scanner could not take the image (finger
	// moved, too dry or wet); Retry or Skip.
	MsgFingerImageFailed = "finger.image-failed"

	// MsgSignature: sign in the field (step 7).
	MsgSignature = "signature.sign"
	// MsgSignatureAgain: the signature could not be used (empty, too
	// short, too long); sign again or Skip.
	MsgSignatureAgain = "signature.again"

	// MsgPayment: pay View.FeeCents at the card terminal (step 8).
	MsgPayment = "payment.follow-terminal"
	// MsgPaymentDeclined: the card was declined; Retry with another card
	// or Skip to pay at the counter.
	MsgPaymentDeclined = "payment.declined"
	// MsgPaymentAborted: the payment was stopped or the terminal did not
	// answer; Retry or Skip.
	MsgPaymentAborted = "payment.aborted"
	// MsgPaymentChecking: the outcome is unclear; the terminal is being
	// asked.
	MsgPaymentChecking = "payment.checking"

	// MsgReview: check the summary and give consent (step 9).
	MsgReview = "review.consent"
	// MsgSaving: the application is being saved (step 10).
	MsgSaving = "saving.wait"
	// MsgPrinting: the receipt is being printed.
	MsgPrinting = "receipt.printing"
	// MsgReceipt: take the receipt and go to the counter when called
	// (step 11).
	MsgReceipt = "receipt.take"
	// MsgReceiptPayAtCounter: as MsgReceipt; the fee is paid at the
	// counter.
	MsgReceiptPayAtCounter = "receipt.pay-at-counter"

	// MsgCounter: please go to the counter with the number; View.Counter
	// lists what the clerk completes there.
	MsgCounter = "counter.go"
	// MsgCounterNoReceipt: the receipt could not be printed; note the
	// number on the screen and go to the counter.
	MsgCounterNoReceipt = "counter.no-receipt"
	// MsgCounterSaveFailed: the application could not be saved; the clerk
	// takes it at the counter.
	MsgCounterSaveFailed = "counter.save-failed"
	// MsgCounterConsentRefused: without consent nothing was sent; the
	// clerk takes the application at the counter.
	MsgCounterConsentRefused = "counter.consent-refused"

	// MsgCancelled: the session was cancelled and everything deleted.
	MsgCancelled = "cancelled.bye"
	// MsgCancelledTimeout: the session ended for lack of input and
	// everything was deleted.
	MsgCancelledTimeout = "cancelled.timeout"

	// MsgOutOfService: a peripheral is missing; Args "peripheral" (camera,
	// fingerprint, eid, payment, printer) and "reason" (for staff).
	MsgOutOfService = "out-of-service.peripheral"
	// MsgOutOfServiceError: the terminal cannot start a session; Args
	// "reason" (for staff).
	MsgOutOfServiceError = "out-of-service.error"
)

// MessageKeys returns every key the flow puts in View.Message.
func MessageKeys() []string {
	return []string{
		MsgWelcome, MsgLanguage, MsgDocuments, MsgDocumentsNone,
		MsgIdentifyStart, MsgIdentifyInsertCard, MsgIdentifyEnterPIN, MsgIdentifyEnterPINReader,
		MsgIdentifyWrongPIN, MsgIdentifyCardDeactivated, MsgIdentifyReading, MsgIdentifyFailed,
		MsgPhotoStarting, MsgPhotoLook, MsgPhotoRetry, MsgPhotoChoose,
		MsgFingerRight, MsgFingerLeft, MsgFingerLow, MsgFingerNone, MsgFingerImageFailed,
		MsgSignature, MsgSignatureAgain,
		MsgPayment, MsgPaymentDeclined, MsgPaymentAborted, MsgPaymentChecking,
		MsgReview, MsgSaving, MsgPrinting, MsgReceipt, MsgReceiptPayAtCounter,
		MsgCounter, MsgCounterNoReceipt, MsgCounterSaveFailed, MsgCounterConsentRefused,
		MsgCancelled, MsgCancelledTimeout,
		MsgOutOfService, MsgOutOfServiceError,
	}
}

// GuidanceKeys returns the photo guidance keys a View.Guidance may hold
// (they come from the Faces implementation; see View.Guidance).
func GuidanceKeys() []string {
	return []string{
		"photo.too-close", "photo.too-far", "photo.higher", "photo.lower", "photo.left", "photo.right",
		"photo.hold-still", "photo.look-straight", "photo.several-faces", "photo.no-face",
		"photo.eyes-closed", "photo.mouth-open", "photo.too-dark", "photo.too-bright", "photo.background",
	}
}

// What moves to the counter: the values of View.Counter and of the
// application's counter list.
const (
	CounterFace      = "face"
	CounterFinger2   = "finger-2"
	CounterFinger7   = "finger-7"
	CounterSignature = "signature"
	CounterFee       = "fee"
)

// CounterItems returns every value View.Counter may hold.
func CounterItems() []string {
	return []string{CounterFace, CounterFinger2, CounterFinger7, CounterSignature, CounterFee}
}
