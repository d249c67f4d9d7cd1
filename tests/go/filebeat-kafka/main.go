// filebeat-kafka: a test peer that talks to a Kafka broker the way Filebeat's Kafka output does.
//
// It links the sarama fork Filebeat ships (github.com/elastic/sarama, pinned in go.mod) and builds
// its sarama.Config with the values libbeat/outputs/kafka/config.go uses by default, so what reaches
// the broker (request versions, gzip level 4 batches, client id "beats", batch sizes, the hash
// partitioner, timestamps) is what a Filebeat with default settings sends.
//
//	filebeat-kafka produce -brokers B -topic T -count N [-version 2.1.0|1.0.0] [-acks 1|-1] [-keys K] [-compression C]
//	filebeat-kafka consume -brokers B -topic T -expect N [-version ...] [-print-seqs]
//	filebeat-kafka group   -brokers B -topic T -group G -expect N [-version ...] [-share] [-seqs-file F]
//
// Every subcommand prints one JSON summary line on stdout and exits 0 only when it did everything it
// was asked to (all events acknowledged / every sequence number read exactly once / every sequence
// number consumed and the group's committed offsets at the log end), 1 otherwise, before -timeout.
// Sarama's own log goes to stderr with -v.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"math"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/elastic/sarama"
)

// common are the flags every subcommand shares.
type common struct {
	brokers string
	topic   string
	version string
	acks    int
	timeout time.Duration
	verbose bool
	codec   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "bootstrap brokers, comma separated (Filebeat's output.kafka.hosts)")
	fs.StringVar(&c.topic, "topic", "", "topic")
	fs.StringVar(&c.version, "version", "2.1.0", "output.kafka.version: 2.1.0 is Filebeat 9.x's default, 1.0.0 Filebeat 8.x's")
	fs.IntVar(&c.acks, "acks", 1, "output.kafka.required_acks: 1 (Filebeat's default via sarama), -1 (all) or 0")
	fs.StringVar(&c.codec, "compression", "gzip", "output.kafka.compression: gzip (Filebeat's default), snappy, lz4 or none")
	fs.DurationVar(&c.timeout, "timeout", 120*time.Second, "give up (exit 1) after this long")
	fs.BoolVar(&c.verbose, "v", false, "sarama's log on stderr")
}

func (c *common) brokerList() []string {
	return strings.Split(c.brokers, ",")
}

// filebeatConfig is newSaramaConfig in libbeat/outputs/kafka/config.go applied to defaultConfig():
// the settings a Filebeat whose output.kafka section names only hosts, topic, version and
// required_acks runs with.
func filebeatConfig(c *common) (*sarama.Config, error) {
	version, err := sarama.ParseKafkaVersion(c.version)
	if err != nil {
		return nil, err
	}
	k := sarama.NewConfig()

	// timeout: 30s, keep_alive: 0, broker_timeout: 10s
	k.Net.DialTimeout = 30 * time.Second
	k.Net.ReadTimeout = 30 * time.Second
	k.Net.WriteTimeout = 30 * time.Second
	k.Net.KeepAlive = 0
	k.Producer.Timeout = 10 * time.Second

	// metadata: retry.max 3, retry.backoff 250ms, refresh_frequency 10m, full false
	k.Metadata.Retry.Max = 3
	k.Metadata.Retry.Backoff = 250 * time.Millisecond
	k.Metadata.RefreshFrequency = 10 * time.Minute
	k.Metadata.Full = false

	// compression: gzip, compression_level: 4; max_message_bytes left at sarama's default
	codecs := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4} // the ones Filebeat accepts
	codec, ok := codecs[c.codec]
	if !ok {
		return nil, fmt.Errorf("compression %q: Filebeat accepts none, gzip, snappy and lz4", c.codec)
	}
	k.Producer.Compression = codec
	k.Producer.CompressionLevel = 4
	k.Producer.RequiredAcks = sarama.RequiredAcks(c.acks)

	k.Producer.Return.Successes = true
	k.Producer.Return.Errors = true

	// max_retries: 3, backoff.init 1s, backoff.max 60s (exponential with jitter, as libbeat does)
	k.Producer.Retry.Max = 3
	k.Producer.Retry.BackoffFunc = backoff(1*time.Second, 60*time.Second)

	// channel_buffer_size: 256, bulk_max_size: 2048, bulk_flush_frequency: 0 (sarama's default)
	k.ChannelBufferSize = 256
	k.Producer.Flush.MaxMessages = 2048

	k.ClientID = "beats"
	k.Version = version
	k.Producer.Partitioner = hashPartitioner

	if err := k.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}

// backoff is exponential backoff with jitter in the upper half of the interval, like libbeat's
// makeBackoffFunc.
func backoff(init, max time.Duration) func(retries, maxRetries int) time.Duration {
	steps := int(math.Ceil(math.Log2(float64(max) / float64(init))))
	return func(retries, _ int) time.Duration {
		d := max
		if retries < steps {
			d = init << uint(retries)
		}
		half := int64(d / 2)
		return time.Duration(half + rand.Int63n(half+1))
	}
}

// partitioner is Filebeat's default (`partition.hash` without fields, reachable_only false): FNV-1a
// of the key modulo the partition count, a random partition when the event has no key, and
// RequiresConsistency so sarama never moves a keyed event to another partition.
type partitioner struct {
	rnd *rand.Rand
}

func hashPartitioner(topic string) sarama.Partitioner {
	return &partitioner{rnd: rand.New(rand.NewSource(rand.Int63()))}
}

func (p *partitioner) RequiresConsistency() bool { return true }

func (p *partitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if msg.Key == nil {
		return int32(p.rnd.Intn(int(n))), nil
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	if key == nil {
		return int32(p.rnd.Intn(int(n))), nil
	}
	h := fnv.New32a()
	h.Write(key)
	return (int32(h.Sum32()) & 0x7FFFFFFF) % n, nil
}

// event is a Filebeat-shaped log event; seq identifies it.
type event struct {
	Timestamp string `json:"@timestamp"`
	Seq       int    `json:"seq"`
	Message   string `json:"message"`
	Log       struct {
		Offset int64 `json:"offset"`
		File   struct {
			Path string `json:"path"`
		} `json:"file"`
	} `json:"log"`
	Input struct {
		Type string `json:"type"`
	} `json:"input"`
	Agent struct {
		Type    string `json:"type"`
		Version string `json:"version"`
	} `json:"agent"`
	Host struct {
		Name string `json:"name"`
	} `json:"host"`
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "filebeat-kafka: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: filebeat-kafka produce|consume|group [flags]")
	}
	var err error
	switch os.Args[1] {
	case "produce":
		err = produce(os.Args[2:])
	case "consume":
		err = consume(os.Args[2:])
	case "group":
		err = group(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail("%s: %v", os.Args[1], err)
	}
}

func setup(c *common, fs *flag.FlagSet, args []string) (*sarama.Config, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.topic == "" {
		return nil, errors.New("-topic is required")
	}
	if c.verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	return filebeatConfig(c)
}

// ------------------------------------------------------------------------------------------------
// produce

type produceSummary struct {
	Acked        int             `json:"acked"`
	Errors       int             `json:"errors"`
	Resent       int             `json:"resent"`
	FirstError   string          `json:"first_error,omitempty"`
	Partitions   map[int32]int   `json:"partitions"`
	Seconds      float64         `json:"seconds"`
	EventsPerSec float64         `json:"events_per_sec"`
	Version      string          `json:"version"`
	Acks         int             `json:"acks"`
	MaxOffset    map[int32]int64 `json:"max_offset"`
}

func produce(args []string) error {
	var c common
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	c.register(fs)
	count := fs.Int("count", 1000, "events to send")
	keys := fs.Int("keys", 0, "0: no key (Filebeat's default; random partition); K>0: key \"key-<seq mod K>\" (hash partition)")
	maxResends := fs.Int("max-resends", 100, "events libbeat may hand back to the output after a failed send, in all")
	cfg, err := setup(&c, fs, args)
	if err != nil {
		return err
	}

	producer, err := sarama.NewAsyncProducer(c.brokerList(), cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}

	host, _ := os.Hostname()
	messageFor := func(seq int) *sarama.ProducerMessage {
		now := time.Now()
		var e event
		e.Timestamp = now.UTC().Format("2006-01-02T15:04:05.000Z")
		e.Seq = seq
		e.Message = fmt.Sprintf("127.0.0.1 - - [%s] \"GET /item/%d HTTP/1.1\" 200 %d \"-\" \"filebeat-kafka\"",
			now.Format("02/Jan/2006:15:04:05 -0700"), seq, 100+seq%900)
		e.Log.Offset = int64(seq) * 120
		e.Log.File.Path = "/var/log/nginx/access.log"
		e.Input.Type = "filestream"
		e.Agent.Type = "filebeat"
		e.Agent.Version = "logpipe-test"
		e.Host.Name = host
		value, _ := json.Marshal(&e)
		m := &sarama.ProducerMessage{Topic: c.topic, Value: sarama.ByteEncoder(value), Metadata: seq}
		if cfg.Version.IsAtLeast(sarama.V0_10_0_0) {
			m.Timestamp = now // the event's timestamp, as Filebeat sets it
		}
		if *keys > 0 {
			m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", seq%*keys))
		}
		return m
	}

	var (
		mu    sync.Mutex
		sum   = produceSummary{Partitions: map[int32]int{}, MaxOffset: map[int32]int64{}, Version: c.version, Acks: c.acks}
		acked = make(map[int]bool, *count)
		// pending holds the seqs still to hand to the producer: all of them at first, then the ones
		// that failed (libbeat gives failed events back to the pipeline, which sends them again).
		pending   = make(chan int, *count)
		done      = make(chan struct{})
		tooMany   = make(chan struct{})
		remaining = *count
	)
	for seq := 0; seq < *count; seq++ {
		pending <- seq
	}
	if *count == 0 {
		close(done)
	}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // libbeat's successWorker
		defer wg.Done()
		for m := range producer.Successes() {
			seq := m.Metadata.(int)
			mu.Lock()
			if !acked[seq] {
				acked[seq] = true
				sum.Acked++
				sum.Partitions[m.Partition]++
				if m.Offset > sum.MaxOffset[m.Partition] {
					sum.MaxOffset[m.Partition] = m.Offset
				}
				if remaining--; remaining == 0 {
					close(done)
				}
			}
			mu.Unlock()
		}
	}()
	go func() { // libbeat's errorWorker
		defer wg.Done()
		for pe := range producer.Errors() {
			seq := pe.Msg.Metadata.(int)
			mu.Lock()
			sum.Errors++
			if sum.FirstError == "" {
				sum.FirstError = pe.Err.Error()
			}
			retry := !acked[seq] && sum.Resent < *maxResends
			if retry {
				sum.Resent++
			} else if !acked[seq] && sum.Resent == *maxResends {
				sum.Resent++ // counted once past the limit, to close tooMany once
				close(tooMany)
			}
			mu.Unlock()
			if retry {
				pending <- seq
			}
		}
	}()

	deadline := time.After(c.timeout)
	input := producer.Input()
	var failure error
feed:
	for {
		select {
		case seq := <-pending:
			select {
			case input <- messageFor(seq):
			case <-deadline:
				failure = errors.New("timed out")
				break feed
			}
		case <-done:
			break feed
		case <-tooMany:
			failure = fmt.Errorf("more than %d sends failed", *maxResends)
			break feed
		case <-deadline:
			failure = errors.New("timed out")
			break feed
		}
	}
	elapsed := time.Since(start)
	producer.AsyncClose()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()

	sum.Seconds = elapsed.Seconds()
	if sum.Seconds > 0 {
		sum.EventsPerSec = float64(sum.Acked) / sum.Seconds
	}
	emit(sum)
	if failure != nil {
		return fmt.Errorf("%d of %d acknowledged: %w", sum.Acked, *count, failure)
	}
	if sum.Acked != *count {
		return fmt.Errorf("%d of %d acknowledged", sum.Acked, *count)
	}
	return nil
}

// ------------------------------------------------------------------------------------------------
// consume and group: what was read

type tally struct {
	mu       sync.Mutex
	expect   int
	seen     map[int]int
	records  int
	bad      int
	firstBad string
	perPart  map[int32]int
	offsets  map[int32]int64 // next expected offset per partition, to spot gaps
	gaps     int
	distinct int
}

func newTally(expect int) *tally {
	return &tally{expect: expect, seen: make(map[int]int, expect), perPart: map[int32]int{}, offsets: map[int32]int64{}}
}

// add records one message; it returns true once every expected seq has been seen.
func (t *tally) add(m *sarama.ConsumerMessage, checkOffsets bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.records++
	t.perPart[m.Partition]++
	if checkOffsets {
		if want, ok := t.offsets[m.Partition]; ok && m.Offset != want {
			t.gaps++
		}
		t.offsets[m.Partition] = m.Offset + 1
	}
	var e struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(m.Value, &e); err != nil || e.Seq == nil {
		t.bad++
		if t.firstBad == "" {
			t.firstBad = fmt.Sprintf("partition %d offset %d: %.80q", m.Partition, m.Offset, m.Value)
		}
		return t.distinct >= t.expect
	}
	if t.seen[*e.Seq] == 0 && *e.Seq >= 0 && *e.Seq < t.expect {
		t.distinct++
	}
	t.seen[*e.Seq]++
	return t.distinct >= t.expect
}

type readSummary struct {
	Records    int             `json:"records"`
	Distinct   int             `json:"distinct"`
	Duplicates int             `json:"duplicates"`
	Missing    int             `json:"missing"`
	Unexpected int             `json:"unexpected"`
	Bad        int             `json:"bad"`
	FirstBad   string          `json:"first_bad,omitempty"`
	Gaps       int             `json:"offset_gaps"`
	Partitions map[int32]int   `json:"partitions"`
	Seconds    float64         `json:"seconds"`
	Committed  map[int32]int64 `json:"committed,omitempty"`
	LogEnd     map[int32]int64 `json:"log_end,omitempty"`
	Errors     []string        `json:"errors,omitempty"`
}

func (t *tally) summary() readSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := readSummary{Records: t.records, Distinct: t.distinct, Bad: t.bad, FirstBad: t.firstBad,
		Gaps: t.gaps, Partitions: map[int32]int{}}
	for p, n := range t.perPart {
		s.Partitions[p] = n
	}
	for seq, n := range t.seen {
		if seq < 0 || seq >= t.expect {
			s.Unexpected += n
		} else if n > 1 {
			s.Duplicates += n - 1
		}
	}
	s.Missing = t.expect - t.distinct
	return s
}

func (t *tally) writeSeqs(path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	seqs := make([]int, 0, len(t.seen))
	for seq := range t.seen {
		seqs = append(seqs, seq)
	}
	sort.Ints(seqs)
	var b strings.Builder
	for _, seq := range seqs {
		for i := 0; i < t.seen[seq]; i++ {
			fmt.Fprintf(&b, "%d\n", seq)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (s readSummary) exact() bool {
	return s.Missing == 0 && s.Duplicates == 0 && s.Unexpected == 0 && s.Bad == 0 && s.Gaps == 0
}

// logEnd is each partition's high watermark (ListOffsets latest).
func logEnd(client sarama.Client, topic string) (map[int32]int64, error) {
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("log end of partition %d: %w", p, err)
		}
		ends[p] = off
	}
	return ends, nil
}

// ------------------------------------------------------------------------------------------------
// consume: a partition consumer per partition, from the log start to the log end as of the start

func consume(args []string) error {
	var c common
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	c.register(fs)
	expect := fs.Int("expect", 0, "sequence numbers 0..expect-1 must each be read once")
	printSeqs := fs.Bool("print-seqs", false, "print every seq read (one per line) before the summary")
	cfg, err := setup(&c, fs, args)
	if err != nil {
		return err
	}
	cfg.Consumer.Return.Errors = true
	start := time.Now()

	client, err := sarama.NewClient(c.brokerList(), cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	ends, err := logEnd(client, c.topic)
	if err != nil {
		return err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()

	t := newTally(*expect)
	var (
		seqMu sync.Mutex
		seqs  []int
		errMu sync.Mutex
		errs  []string
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for p, end := range ends {
		pc, err := consumer.ConsumePartition(c.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
		wg.Add(1)
		go func(p int32, end int64, pc sarama.PartitionConsumer) {
			defer wg.Done()
			defer pc.AsyncClose()
			if end == 0 {
				return
			}
			for {
				select {
				case m := <-pc.Messages():
					t.add(m, true)
					if *printSeqs {
						var e struct{ Seq int }
						if json.Unmarshal(m.Value, &e) == nil {
							seqMu.Lock()
							seqs = append(seqs, e.Seq)
							seqMu.Unlock()
						}
					}
					if m.Offset+1 >= end {
						return
					}
				case e := <-pc.Errors():
					errMu.Lock()
					errs = append(errs, e.Error())
					errMu.Unlock()
				case <-ctx.Done():
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("partition %d: timed out", p))
					errMu.Unlock()
					return
				}
			}
		}(p, end, pc)
	}
	wg.Wait()

	if *printSeqs {
		sort.Ints(seqs)
		for _, s := range seqs {
			fmt.Println(s)
		}
	}
	s := t.summary()
	s.Seconds = time.Since(start).Seconds()
	s.LogEnd = ends
	s.Errors = errs
	emit(s)
	if ctx.Err() != nil {
		return errors.New("timed out")
	}
	if *expect > 0 && !s.exact() {
		return errors.New("not every sequence number read exactly once")
	}
	return nil
}

// ------------------------------------------------------------------------------------------------
// group: a ConsumerGroup member that marks every message and lets autocommit commit

type handler struct {
	t    *tally
	done chan struct{}
	once sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			// Offsets are not contiguous across a rebalance, so they are not checked here.
			if h.t.add(m, false) {
				h.once.Do(func() { close(h.done) })
			}
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func group(args []string) error {
	var c common
	fs := flag.NewFlagSet("group", flag.ExitOnError)
	c.register(fs)
	groupID := fs.String("group", "", "group id")
	expect := fs.Int("expect", 0, "sequence numbers 0..expect-1 to consume before waiting for the commit")
	share := fs.Bool("share", false, "one of several members: consume whatever share the group assigns, and exit once "+
		"the group's committed offsets reach the log end (as of the start); -expect only bounds the seqs counted")
	seqsFile := fs.String("seqs-file", "", "write every seq this member consumed (one per line, repeats included) here")
	cfg, err := setup(&c, fs, args)
	if err != nil {
		return err
	}
	if *groupID == "" {
		return errors.New("-group is required")
	}
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	start := time.Now()

	client, err := sarama.NewClient(c.brokerList(), cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	cg, err := sarama.NewConsumerGroupFromClient(*groupID, client)
	if err != nil {
		return err
	}

	// The topic is complete before a member starts, so its log end now is what must be committed.
	ends, err := logEnd(client, c.topic)
	if err != nil {
		return err
	}
	h := &handler{t: newTally(*expect), done: make(chan struct{})}
	if *share {
		close(h.done) // what this member must see is whatever it is assigned
	}
	ctx, cancel := context.WithCancel(context.Background())
	var errMu sync.Mutex
	var errs []string
	note := func(e error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, e.Error())
		}
	}
	go func() {
		for e := range cg.Errors() {
			note(e)
		}
	}()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ctx.Err() == nil {
			// Consume returns at every rebalance; a member calls it again.
			if err := cg.Consume(ctx, []string{c.topic}, h); err != nil {
				note(err)
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				select { // back off before joining again, as a member would
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}
	}()

	deadline := time.After(c.timeout)
	var failure error
	var committed map[int32]int64
	select {
	case <-h.done:
	case <-deadline:
		failure = errors.New("timed out consuming")
	}
	// Wait, polling OffsetFetch, until autocommit has committed the log end of every partition.
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for failure == nil {
		committed, err = committedOffsets(client, *groupID, c.topic, ends)
		if err == nil && sameOffsets(committed, ends) {
			break
		}
		if err != nil {
			note(err)
		}
		select {
		case <-poll.C:
		case <-deadline:
			failure = errors.New("timed out waiting for the committed offsets to reach the log end")
		}
	}
	cancel()
	<-consumed
	if err := cg.Close(); err != nil {
		note(err)
	}

	s := h.t.summary()
	s.Gaps = 0
	s.Seconds = time.Since(start).Seconds()
	s.Committed = committed
	s.LogEnd = ends
	errMu.Lock()
	s.Errors = errs
	errMu.Unlock()
	emit(s)
	if *seqsFile != "" {
		if err := h.t.writeSeqs(*seqsFile); err != nil {
			return err
		}
	}
	if failure != nil {
		return failure
	}
	if *share {
		if s.Unexpected != 0 || s.Bad != 0 {
			return errors.New("foreign or undecodable records consumed")
		}
		return nil
	}
	// A rebalance may hand a partition over before its last marks are committed, so a group member may
	// legitimately see a record twice (at-least-once); missing or foreign records are failures.
	if s.Missing != 0 || s.Unexpected != 0 || s.Bad != 0 {
		return errors.New("not every sequence number consumed")
	}
	return nil
}

// committedOffsets asks the group coordinator (OffsetFetch, at the version the configured Kafka
// version implies) what the group has committed. (sarama's ClusterAdmin would do the same, but it
// needs a controller, which a client with Metadata.Full off cannot look up without a topic.)
func committedOffsets(client sarama.Client, groupID, topic string, ends map[int32]int64) (map[int32]int64, error) {
	parts := make([]int32, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	coordinator, err := client.Coordinator(groupID)
	if err != nil {
		return nil, err
	}
	resp, err := coordinator.FetchOffset(sarama.NewOffsetFetchRequest(client.Config().Version, groupID, map[string][]int32{topic: parts}))
	if err != nil {
		return nil, err
	}
	if resp.Err != sarama.ErrNoError {
		return nil, resp.Err
	}
	out := map[int32]int64{}
	for _, p := range parts {
		b := resp.GetBlock(topic, p)
		if b == nil {
			return nil, fmt.Errorf("no offset for partition %d", p)
		}
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("partition %d: %w", p, b.Err)
		}
		out[p] = b.Offset
	}
	return out, nil
}

func sameOffsets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for p, o := range b {
		if a[p] != o {
			return false
		}
	}
	return true
}
