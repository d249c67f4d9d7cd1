// Filebeat's Kafka output, reduced to its client: github.com/elastic/sarama configured with Filebeat's
// defaults (libbeat/outputs/kafka/config.go): version 2.1.0 (Filebeat 9.x; 8.x used 1.0.0), gzip at
// level 4, required_acks 1, client_id "beats", the hash partitioner on the event key, bulk_max_size
// 2048, channel_buffer_size 256, broker_timeout 10s, 3 retries 250 ms apart. The subcommands print one
// summary line each, for tests/python/test_filebeat_sarama.py.
//
//	filebeat-kafka produce -brokers B -topic T -n N [-version 2.1.0] [-acks 1|-1]
//	filebeat-kafka consume -brokers B -topic T -n N        reads every partition from the oldest offset
//	filebeat-kafka group   -brokers B -topic T -group G -n N  a consumer group member that marks and commits
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/elastic/sarama"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: filebeat-kafka produce|consume|group [flags]")
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := fs.String("topic", "", "topic")
	n := fs.Int("n", 100000, "events")
	version := fs.String("version", "2.1.0", "Kafka protocol version (Filebeat 9.x: 2.1.0, 8.x: 1.0.0)")
	acks := fs.Int("acks", 1, "required_acks: 1 or -1")
	group := fs.String("group", "filebeat-test", "consumer group (group)")
	_ = fs.Parse(os.Args[2:])
	cfg := filebeatConfig(*version, *acks)
	addrs := strings.Split(*brokers, ",")
	switch cmd {
	case "produce":
		produce(addrs, cfg, *topic, *n)
	case "consume":
		consume(addrs, cfg, *topic, *n)
	case "group":
		groupConsume(addrs, cfg, *topic, *group, *n)
	default:
		fail("unknown command " + cmd)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}

// filebeatConfig mirrors libbeat's newSaramaConfig with the output's defaults.
func filebeatConfig(version string, acks int) *sarama.Config {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		fail(err.Error())
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "beats"
	c.ChannelBufferSize = 256
	c.Net.DialTimeout = 30 * time.Second
	c.Net.ReadTimeout = 30 * time.Second
	c.Net.WriteTimeout = 30 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Metadata.RefreshFrequency = 10 * time.Minute
	c.Producer.Timeout = 10 * time.Second // broker_timeout
	c.Producer.RequiredAcks = sarama.RequiredAcks(acks)
	c.Producer.Compression = sarama.CompressionGZIP
	c.Producer.CompressionLevel = 4
	c.Producer.MaxMessageBytes = 1000000
	c.Producer.Flush.MaxMessages = 2048 // bulk_max_size
	c.Producer.Retry.Max = 3
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	return c
}

type event struct {
	Timestamp string            `json:"@timestamp"`
	Message   string            `json:"message"`
	Seq       int               `json:"seq"`
	Host      map[string]string `json:"host"`
}

func produce(addrs []string, cfg *sarama.Config, topic string, n int) {
	producer, err := sarama.NewAsyncProducer(addrs, cfg)
	if err != nil {
		fail("producer: " + err.Error())
	}
	start := time.Now()
	var acked, failed int
	var firstErr error
	done := make(chan struct{})
	go func() {
		for acked+failed < n {
			select {
			case <-producer.Successes():
				acked++
			case e := <-producer.Errors():
				failed++
				if firstErr == nil {
					firstErr = e.Err
				}
			}
		}
		close(done)
	}()
	hosts := []string{"web-01", "web-02", "web-03", "web-04"}
	for i := 0; i < n; i++ {
		host := hosts[i%len(hosts)]
		value, _ := json.Marshal(event{time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf("line %d", i), i, map[string]string{"name": host}})
		producer.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(host), Value: sarama.ByteEncoder(value)}
	}
	<-done
	_ = producer.Close()
	secs := time.Since(start).Seconds()
	fmt.Printf("produced acked=%d failed=%d seconds=%.2f events_per_s=%.0f\n", acked, failed, secs, float64(acked)/secs)
	if failed > 0 {
		fail(fmt.Sprintf("%d events failed, first: %v", failed, firstErr))
	}
}

func consume(addrs []string, cfg *sarama.Config, topic string, n int) {
	consumer, err := sarama.NewConsumer(addrs, cfg)
	if err != nil {
		fail("consumer: " + err.Error())
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(topic)
	if err != nil {
		fail("partitions: " + err.Error())
	}
	seqs := make(chan int, 1024)
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail(fmt.Sprintf("partition %d: %v", p, err))
		}
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				var e event
				if json.Unmarshal(m.Value, &e) == nil {
					seqs <- e.Seq
				}
			}
		}(pc)
	}
	report(collect(seqs, n), n)
}

// groupHandler marks every message; sarama's offset manager commits them (auto-commit), and a final
// commit happens when the session ends.
type groupHandler struct{ seqs chan int }

func (groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		var e event
		if json.Unmarshal(m.Value, &e) == nil {
			h.seqs <- e.Seq
		}
		s.MarkMessage(m, "")
	}
	return nil
}

func groupConsume(addrs []string, cfg *sarama.Config, topic, group string, n int) {
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		fail("consumer group: " + err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	seqs := make(chan int, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, groupHandler{seqs}); err != nil {
				fmt.Fprintln(os.Stderr, "consume:", err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			fmt.Fprintln(os.Stderr, "group error:", err)
		}
	}()
	got := collect(seqs, n)
	// Let the auto-commit interval pass once more so the last marks are committed, then leave.
	time.Sleep(2 * cfg.Consumer.Offsets.AutoCommit.Interval)
	cancel()
	wg.Wait()
	if err := cg.Close(); err != nil {
		fail("close: " + err.Error())
	}
	report(got, n)
}

func collect(seqs chan int, n int) []int {
	var got []int
	deadline := time.After(3 * time.Minute)
	for len(got) < n {
		select {
		case s := <-seqs:
			got = append(got, s)
		case <-deadline:
			fmt.Printf("consumed=%d of %d before the deadline\n", len(got), n)
			os.Exit(1)
		}
	}
	return got
}

func report(got []int, n int) {
	sort.Ints(got)
	distinct, missing := 0, 0
	for i := 0; i < len(got); i++ {
		if i == 0 || got[i] != got[i-1] {
			distinct++
		}
	}
	seen := make(map[int]bool, len(got))
	for _, s := range got {
		seen[s] = true
	}
	for i := 0; i < n; i++ {
		if !seen[i] {
			missing++
		}
	}
	fmt.Printf("consumed=%d distinct=%d missing=%d\n", len(got), distinct, missing)
}
