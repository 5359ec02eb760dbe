// Command koggectl is the command-line tool for Kogge fleet admins and
// developers.
//
//	koggectl decode [--topic T] FILE|-   print a wire payload as JSON
//	koggectl group list|create
//	koggectl enroll-code create|list|revoke
//	koggectl device list|show|revoke
//	koggectl twin get|set
//	koggectl command send|status|list
//	koggectl delivery list|show|queues
//	koggectl dead-letter list|show|replay|discard
//	koggectl erase --record ID | --reference REF
//	koggectl audit list|verify
//	koggectl bridge-cert --office O --csr FILE | list | revoke
//	koggectl artifact keygen|sign|verify|upload|list|show|delete
//	koggectl rollout create|list|show|devices|pause|resume|abort|watch
//	koggectl broker-config mosquitto|emqx    an external broker's configuration
//
// The admin commands talk to the fleet server's REST API; see admin.go for
// --server, --token, --token-file and --json.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one koggectl command with the process environment and
// returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(args, os.Getenv, stdin, stdout, stderr)
}

// runWith executes one koggectl command and returns the exit code: 0 on
// success, 1 when the command failed, 2 for a bad command line.
func runWith(args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "decode":
		err = decodeCmd(args[1:], stdin, stdout, stderr)
	case "group":
		err = groupCmd(args[1:], getenv, stdin, stdout, stderr)
	case "enroll-code":
		err = enrollCodeCmd(args[1:], getenv, stdin, stdout, stderr)
	case "device":
		err = deviceCmd(args[1:], getenv, stdin, stdout, stderr)
	case "twin":
		err = twinCmd(args[1:], getenv, stdin, stdout, stderr)
	case "command":
		err = commandCmd(args[1:], getenv, stdin, stdout, stderr)
	case "delivery":
		err = deliveryCmd(args[1:], getenv, stdin, stdout, stderr)
	case "dead-letter":
		err = deadLetterCmd(args[1:], getenv, stdin, stdout, stderr)
	case "erase":
		err = eraseCmd(args[1:], getenv, stdin, stdout, stderr)
	case "audit":
		err = auditCmd(args[1:], getenv, stdin, stdout, stderr)
	case "bridge-cert":
		err = bridgeCertCmd(args[1:], getenv, stdin, stdout, stderr)
	case "user":
		err = userCmd(args[1:], getenv, stdin, stdout, stderr)
	case "artifact":
		err = artifactCmd(args[1:], getenv, stdin, stdout, stderr)
	case "rollout":
		err = rolloutCmd(args[1:], getenv, stdin, stdout, stderr)
	case "broker-config":
		err = brokerConfigCmd(args[1:], getenv, stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "koggectl: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "koggectl %s: %v\n", args[0], err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "koggectl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: koggectl COMMAND [ARGS]

commands:
  decode [--topic T] FILE|-   print a Kogge wire payload as indented JSON;
                              with --topic, also check that the topic carries it

fleet administration, through the fleet server's REST API:
  group list
  group create [--id ID] NAME
  enroll-code create --group G [--ttl 24h] [--note TEXT]
                              a one-time enrollment code and the CA fingerprint
  enroll-code list [--group G]
  enroll-code revoke ID
  device list [--group G] [--state S] [--software V] [--seen-within D]
              [--not-seen-for D] [--limit N]
  device show ID              inventory, certificates, presence, health, sync
  device revoke ID [--reason TEXT]
  twin get --device D | --group G
  twin set --device D | --group G FILE.json|-
                              FILE holds the configuration object; for a
                              device it is the device's override
  command send --device D | --group G NAME [KEY=VALUE ...] [--ttl D]
  command status ID
  command list --device D [--limit N]
  delivery list [--office O] [--state S] [--limit N]
  delivery show RECORD        a record's delivery and metadata (never the body)
  delivery queues             queue depth, lag and dead letters per office
  dead-letter list [--office O] [--limit N]
  dead-letter show RECORD     why it failed, and the record's metadata
  dead-letter replay RECORD   back into its queue, attempts reset (audited)
  dead-letter discard RECORD [--reason TEXT]
                              delete its sealed body and blobs (audited)
  erase --record ID | --reference REF
                              erase the body and blobs of a record, or of the
                              records with a procedure reference (audited)
  audit list [--action A] [--target T] [--since TIME|24h] [--newest] [--limit N]
  audit verify                check the audit log's hash chain; exit 1 and the
                              first broken entry on tampering
  bridge-cert --office O --csr FILE|- [--out FILE]
                              a client certificate for an office's bridge
                              (FILE gets the certificate, FILE.ca the fleet CA)
  bridge-cert list [--office O]
  bridge-cert revoke SERIAL

software updates (keygen, sign and verify work offline on files):
  artifact keygen --out NAME  an ed25519 signing key pair: NAME.key, NAME.pub
  artifact sign --key NAME.key --version V --app A[,A] [--platform OS/ARCH]
              [--name N] [--min-version V] [--notes T] BINARY
                              writes the signed manifest BINARY.manifest
  artifact verify --keys NAME.pub[,…] BINARY
                              checks the signature and the binary; exit 1 if not
  artifact upload BINARY      the binary and its signed manifest to the server
  artifact list | show ID | delete ID
  rollout create --artifact ID [--group G] [--devices D,…] [--model M]
              [--software V] [--waves 1,5%,25%,100%] [--success 0.95]
              [--errors 0.05] [--soak 10m] [--window 19:00-07:00|always]
              [--update-with-unsent] [--allow-downgrade] [--name N]
  rollout list [--state S] | show ID | devices ID [--state S]
  rollout pause ID | resume ID | abort ID [--reason TEXT]
  rollout watch ID            a line on every change until the rollout ends

dashboard users, on the server machine (opens the server's database directly):
  user add [--role R] [--password-stdin] NAME
  user list
  user passwd NAME

external broker, on a server machine (opens the server's database, signs with
the fleet CA; see docs/deploy.md):
  broker-config mosquitto --out DIR --name HOST[,HOST] --replicas ID[,ID]
              [--listen [HOST:]PORT] [--user U] [--conf-dir DIR] [--pid-file F]
                              mosquitto.conf, ACL, CRL, CA and broker certificate
  broker-config mosquitto --update --out DIR [--reload] [--watch 10s]
                              bring CRL and ACL up to the revocations
  broker-config emqx --out DIR --name HOST[,HOST] --server-url https://HOST:PORT
                              emqx-kogge.hocon (TLS, hash_clientid, HTTP auth
                              against kogge-server), CA and broker certificate

flags of the fleet administration commands:
  --server URL        API base URL (KOGGE_SERVER, default http://127.0.0.1:8080)
  --token-file FILE   file holding the API token (KOGGE_TOKEN_FILE; default the
                      api-token file in the server's default data directory)
  --token TOKEN       the API token (KOGGE_TOKEN)
  --json              print JSON for scripts
  --timeout D         timeout of each request (default 30s)
`)
}
