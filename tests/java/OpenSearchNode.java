// One OpenSearch node for the tests, started from the jars scripts/peers.sh puts in .peers/opensearch/libs
// (tests/peers/opensearch/pom.xml): single-node discovery, HTTP on 127.0.0.1, data under a temp path.
//
//   java -cp '.peers/opensearch/libs/*:<classes>' OpenSearchNode HOME HTTP_PORT
//
// HTTP_PORT 0 takes a free port. Once the node answers, one line `HTTP 127.0.0.1:<port>` goes to stdout;
// the node then runs until the process is killed (SIGTERM closes it). Restarting with the same HOME and
// port brings back the same data, as a restarted server would.
//
// The modules a log index needs are loaded from the classpath, as the distribution loads them from
// modules/: netty4 (HTTP and transport), the common analyzers, the extra mappers (scaled_float,
// rank_feature, ...) and painless.

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public class OpenSearchNode {
    /** Node's constructor that takes plugin classes from the classpath is protected. */
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: OpenSearchNode HOME HTTP_PORT");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "logpipe-test")
            .put("node.name", "node-0")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", "0")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // A shared test machine's disk may be fuller than the default watermarks allow.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .build();
        List<Class<? extends Plugin>> plugins =
            List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, MapperExtrasPlugin.class, PainlessPlugin.class);
        Node node = new ClasspathNode(new Environment(settings, home.resolve("config")), plugins);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        node.start();
        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        System.out.println("HTTP " + http.getAddress() + ":" + http.getPort());
        System.out.flush();
        Thread.currentThread().join();
    }
}
