// Readiness probe for the native Kafka broker (deploy/native/stack.sh).
//
// A TCP connect only proves the socket is bound; this asks the broker for cluster metadata through
// the real client (kafka-clients is already on the broker's class path), so it succeeds only once the
// broker serves requests and has registered itself (fenced brokers are not listed).
//
// Usage: java -cp <probe-dir>:<libs>/* KafkaReady <bootstrap> <seconds>
// Retries until <seconds> have passed; exit 0 when a broker is listed, 1 otherwise.
import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.common.Node;

public final class KafkaReady {
    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        long seconds = args.length > 1 ? Long.parseLong(args[1]) : 10;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "3000");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");

        String last = "no attempt";
        try (Admin admin = Admin.create(p)) {
            while (System.nanoTime() < deadline) {
                try {
                    DescribeClusterResult r = admin.describeCluster();
                    Collection<Node> nodes = r.nodes().get(3, TimeUnit.SECONDS);
                    if (!nodes.isEmpty()) {
                        System.out.println("kafka ready: cluster " + r.clusterId().get(3, TimeUnit.SECONDS)
                                + ", brokers " + nodes + ", controller " + r.controller().get(3, TimeUnit.SECONDS));
                        System.exit(0);
                    }
                    last = "no broker registered yet";
                } catch (Exception e) {
                    last = e.toString();
                }
                Thread.sleep(500);
            }
        }
        System.err.println("kafka not ready at " + bootstrap + ": " + last);
        System.exit(1);
    }
}
