// sarama-scram: Filebeat's Kafka output settings for SASL (output.kafka.sasl.mechanism, username,
// password, ssl.certificate_authorities) on elastic/sarama, whose SCRAM client beats builds on
// github.com/xdg-go/scram. It produces -n events (acks all, gzip, as Filebeat) to -topic, reads them
// back from the oldest offset, and prints one JSON line {"produced":N,"consumed":N}. A refused login
// exits 1 with sarama's error on stderr.
//
//	sarama-scram -brokers 127.0.0.1:9093 -topic t -n 100 -mechanism SCRAM-SHA-512 \
//	    -username agent -password-file agent.password -ca ca.pem [-handshake-v1]
package main

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/elastic/sarama"
	"github.com/xdg-go/scram"
)

// xdgClient is sarama's SCRAMClient on xdg-go/scram.
type xdgClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *xdgClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *xdgClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *xdgClient) Done() bool { return c.conv.Done() }

func config(mechanism, user, password, caFile string, v1 bool) (*sarama.Config, error) {
	k := sarama.NewConfig()
	version, err := sarama.ParseKafkaVersion("2.1.0") // Filebeat 9.x's output.kafka.version default
	if err != nil {
		return nil, err
	}
	k.Version = version
	k.ClientID = "beats"
	k.Producer.RequiredAcks = sarama.WaitForAll
	k.Producer.Return.Successes = true
	k.Producer.Compression = sarama.CompressionGZIP
	k.Consumer.Offsets.Initial = sarama.OffsetOldest
	k.Metadata.Retry.Max = 3
	k.Net.DialTimeout = 10 * time.Second

	k.Net.SASL.Enable = true
	k.Net.SASL.Handshake = true
	k.Net.SASL.User = user
	k.Net.SASL.Password = password
	if v1 {
		k.Net.SASL.Version = sarama.SASLHandshakeV1
	} else {
		k.Net.SASL.Version = sarama.SASLHandshakeV0
	}
	switch mechanism {
	case "PLAIN":
		k.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		k.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		k.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgClient{hash: sha256.New} }
	case "SCRAM-SHA-512":
		k.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		k.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgClient{hash: sha512.New} }
	default:
		return nil, fmt.Errorf("-mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s: no PEM certificate", caFile)
		}
		k.Net.TLS.Enable = true
		k.Net.TLS.Config = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return k, k.Validate()
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9093", "bootstrap brokers, comma separated")
	topic := flag.String("topic", "", "topic")
	n := flag.Int("n", 100, "events to produce and read back")
	mechanism := flag.String("mechanism", "SCRAM-SHA-512", "output.kafka.sasl.mechanism")
	user := flag.String("username", "", "output.kafka.username")
	passwordFile := flag.String("password-file", "", "file holding output.kafka.password")
	caFile := flag.String("ca", "", "ssl.certificate_authorities (PEM); none: SASL_PLAINTEXT")
	v1 := flag.Bool("handshake-v1", false, "SaslHandshake v1 + SaslAuthenticate instead of v0 + raw tokens")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if *topic == "" {
		return errors.New("-topic is required")
	}
	password, err := os.ReadFile(*passwordFile)
	if err != nil {
		return fmt.Errorf("-password-file: %w", err)
	}
	k, err := config(*mechanism, *user, strings.TrimRight(string(password), "\r\n"), *caFile, *v1)
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(strings.Split(*brokers, ","), k)
	if err != nil {
		return err
	}
	defer client.Close()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return err
	}
	for i := 0; i < *n; i++ {
		msg := &sarama.ProducerMessage{Topic: *topic, Value: sarama.StringEncoder(fmt.Sprintf("event %d", i))}
		if _, _, err := producer.SendMessage(msg); err != nil {
			return err
		}
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(*topic)
	if err != nil {
		return err
	}
	consumed := 0
	deadline := time.After(*timeout)
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(*topic, p, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		newest, err := client.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		for offset := int64(0); offset < newest; {
			select {
			case m := <-pc.Messages():
				consumed++
				offset = m.Offset + 1
			case e := <-pc.Errors():
				return e
			case <-deadline:
				return fmt.Errorf("read %d of %d events before -timeout", consumed, *n)
			}
		}
		pc.Close()
	}
	out, _ := json.Marshal(map[string]int{"produced": *n, "consumed": consumed})
	fmt.Println(string(out))
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sarama-scram:", err)
		os.Exit(1)
	}
}
