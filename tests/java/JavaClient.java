// The Apache Kafka Java client (kafka-clients, the version on the classpath) as Logstash's kafka input
// and a Java producer use it, driven by tests/python/test_java_client.py. Plain Java, one file; output is
// one machine-readable line per event on stdout, the client's own log (slf4j-simple) on stderr.
//
//   produce   BOOTSTRAP TOPIC N CODEC          idempotent, acks=all; prints "ACKED <partition> <offset>" per record
//   consume   BOOTSTRAP TOPIC GROUP N [extra]   Logstash's settings; prints "ASSIGNED ..." then "RECORD <p> <off> <value>"
//   admin     BOOTSTRAP TOPIC GROUP             describeCluster/Topics, list/describeConsumerGroups, listOffsets
//   transactional BOOTSTRAP TOPIC               expects initTransactions to fail; prints "REFUSED <exception class>: <message>"
//   consumer-protocol BOOTSTRAP TOPIC           group.protocol=consumer (KIP-848); prints "REFUSED ..." likewise
//
// With JAVA_CLIENT_SECURITY=<file> in the environment, every client also takes that properties file's
// settings (security.protocol, sasl.jaas.config, ssl.truststore.*...), as --command-config does.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaClient {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]), args[4]);
            case "consume" -> consume(args[1], args[2], args[3], Integer.parseInt(args[4]), args.length > 5 ? args[5] : "");
            case "admin" -> admin(args[1], args[2], args[3]);
            case "delete-by-id" -> deleteById(args[1], args[2]);
            case "transactional" -> transactional(args[1], args[2]);
            case "consumer-protocol" -> consumerProtocol(args[1], args[2]);
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    /** The settings of $JAVA_CLIENT_SECURITY, if set, added to `p`. */
    static Properties secured(Properties p) {
        String file = System.getenv("JAVA_CLIENT_SECURITY");
        if (file != null && !file.isEmpty()) {
            try (java.io.FileReader reader = new java.io.FileReader(file)) {
                Properties extra = new Properties();
                extra.load(reader);
                p.putAll(extra);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("JAVA_CLIENT_SECURITY=" + file + ": " + e.getMessage(), e);
            }
        }
        return p;
    }

    static void produce(String bootstrap, String topic, int n, String codec) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "java-producer");
        p.put("enable.idempotence", "true");
        p.put("acks", "all");
        p.put("compression.type", codec);
        p.put("linger.ms", "5");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(secured(p))) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String value = String.format("{\"seq\":%d,\"message\":\"java %s\"}", i, codec);
                sent.add(producer.send(new ProducerRecord<>(topic, i % 2 == 0 ? null : "key-" + (i % 7), value)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                RecordMetadata m = f.get();
                System.out.println("ACKED " + m.partition() + " " + m.offset());
            }
        }
        System.out.println("DONE");
    }

    /** Logstash's kafka input (8.x/9.x) defaults, as its plugin sets them on the Java consumer. */
    static Properties logstashConsumer(String bootstrap, String group) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("client.id", "logstash-0");
        p.put("enable.auto.commit", "true");
        p.put("auto.commit.interval.ms", "5000");
        p.put("auto.offset.reset", "latest");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "3000");
        p.put("max.poll.records", "500");
        p.put("check.crcs", "true");
        p.put("isolation.level", "read_uncommitted");
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return p;
    }

    static void consume(String bootstrap, String topic, String group, int n, String extra) {
        Properties p = logstashConsumer(bootstrap, group);
        for (String kv : extra.split(",")) {
            if (!kv.isEmpty()) {
                String[] parts = kv.split("=", 2);
                p.put(parts[0], parts[1]);
            }
        }
        int seen = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(secured(p))) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    System.out.println("REVOKED " + parts.size());
                    System.out.flush();
                }

                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    // ASSIGNED is printed once the positions are resolved (auto.offset.reset "latest" is a
                    // ListOffsets): a test that produces after seeing it knows those records are not skipped.
                    StringBuilder b = new StringBuilder("ASSIGNED");
                    for (TopicPartition tp : parts) {
                        consumer.position(tp);
                        b.append(' ').append(tp.partition());
                    }
                    System.out.println(b);
                    System.out.flush();
                }
            });
            long idleSince = System.currentTimeMillis();
            // n < 0: consume until no record arrives for 10 s after at least one did (group members).
            while (n < 0 ? (seen == 0 || System.currentTimeMillis() - idleSince < 10_000) : seen < n) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println("RECORD " + r.partition() + " " + r.offset() + " " + r.value());
                    seen++;
                    idleSince = System.currentTimeMillis();
                }
                System.out.flush();
            }
        }
        // close() commits the consumed offsets (auto-commit), as Logstash's shutdown does.
        System.out.println("CLOSED " + seen);
    }

    static void admin(String bootstrap, String topic, String group) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(secured(p))) {
            DescribeClusterResult cluster = admin.describeCluster();
            System.out.println("CLUSTER " + cluster.clusterId().get() + " " + cluster.nodes().get().size() + " "
                    + cluster.controller().get().id());
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            System.out.println("TOPIC " + d.name() + " " + d.partitions().size() + " " + d.partitions().get(0).leader().id());
            admin.listConsumerGroups().all().get().forEach(g -> System.out.println("GROUP " + g.groupId()));
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            System.out.println("DESCRIBED " + g.groupId() + " " + g.state() + " " + g.members().size());
            for (MemberDescription m : g.members()) {
                System.out.println("MEMBER " + m.clientId() + " " + m.assignment().topicPartitions().size());
            }
            Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            Map<TopicPartition, OffsetSpec> byTime = new HashMap<>();
            for (int i = 0; i < d.partitions().size(); i++) {
                TopicPartition tp = new TopicPartition(topic, i);
                earliest.put(tp, OffsetSpec.earliest());
                latest.put(tp, OffsetSpec.latest());
                byTime.put(tp, OffsetSpec.forTimestamp(0));
            }
            print("EARLIEST", admin.listOffsets(earliest).all().get());
            print("LATEST", admin.listOffsets(latest).all().get());
            print("BYTIME", admin.listOffsets(byTime).all().get());
        }
    }

    /** Deletes a topic by its id alone (DeleteTopics v6, as `Admin.deleteTopics(TopicCollection.ofTopicIds(..))`). */
    static void deleteById(String bootstrap, String topic) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(secured(p))) {
            Uuid id = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId();
            System.out.println("ID " + id);
            try {
                admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
                System.out.println("DELETED");
            } catch (ExecutionException e) {
                refused(e);
            }
        }
    }

    static void print(String tag, Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> offsets) {
        offsets.forEach((tp, info) -> System.out.println(tag + " " + tp.partition() + " " + info.offset()));
    }

    static void transactional(String bootstrap, String topic) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", "java-tx");
        p.put("max.block.ms", "20000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            System.out.println("ACCEPTED");
        } catch (Exception e) {
            refused(e);
        }
    }

    static void consumerProtocol(String bootstrap, String topic) {
        Properties p = logstashConsumer(bootstrap, "kip848");
        p.put("group.protocol", "consumer");
        // The broker runs the group's timeouts under KIP-848; the client refuses to set them.
        p.remove("session.timeout.ms");
        p.remove("heartbeat.interval.ms");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline) {
                consumer.poll(Duration.ofMillis(200));
            }
            System.out.println("ACCEPTED");
        } catch (Exception e) {
            refused(e);
        }
    }

    static void refused(Throwable e) {
        Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        System.out.println("REFUSED " + cause.getClass().getName() + ": " + cause.getMessage());
    }
}
