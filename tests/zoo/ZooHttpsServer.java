// A partner on Java's JSSE, as Java shops run mTLS: HttpsServer with SSLParameters.setNeedClientAuth(true).
// Usage: java ZooHttpsServer.java KEYSTORE STOREPASS TRUSTSTORE TRUSTPASS PORT:PROTOCOL...
// Each PORT listens on 127.0.0.1 and accepts only PROTOCOL (TLSv1.2 or TLSv1.3).

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import java.io.File;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

public class ZooHttpsServer {
    public static void main(String[] args) throws Exception {
        char[] storePass = args[1].toCharArray();
        KeyStore keyStore = KeyStore.getInstance(new File(args[0]), storePass);
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(keyStore, storePass);
        KeyStore trustStore = KeyStore.getInstance(new File(args[2]), args[3].toCharArray());
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(trustStore);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys.getKeyManagers(), trust.getTrustManagers(), null);
        byte[] body = "{\"partner\": \"jsse\", \"ok\": true}".getBytes(StandardCharsets.UTF_8);
        for (int i = 4; i < args.length; i++) {
            String[] portAndProtocol = args[i].split(":");
            String protocol = portAndProtocol[1];
            HttpsServer server = HttpsServer.create(
                new InetSocketAddress("127.0.0.1", Integer.parseInt(portAndProtocol[0])), 64);
            server.setHttpsConfigurator(new HttpsConfigurator(context) {
                @Override
                public void configure(HttpsParameters params) {
                    SSLParameters parameters = getSSLContext().getDefaultSSLParameters();
                    parameters.setNeedClientAuth(true);
                    parameters.setProtocols(new String[] {protocol});
                    params.setSSLParameters(parameters);
                }
            });
            server.createContext("/", exchange -> {
                exchange.getResponseHeaders().set("Content-Type", "application/json");
                boolean head = "HEAD".equals(exchange.getRequestMethod());
                exchange.sendResponseHeaders(200, head ? -1 : body.length);
                if (!head) {
                    try (OutputStream out = exchange.getResponseBody()) {
                        out.write(body);
                    }
                }
                exchange.close();
            });
            server.start();
        }
        System.out.println("listening");
        System.out.flush();
    }
}
