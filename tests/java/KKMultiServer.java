/*
 * The many-clients Knock Knock server in the style of the Java sockets tutorial's
 * KKMultiServer: accept in a loop and give each client its own KKMultiServerThread. For
 * sockkit's interop tests it binds loopback only, accepts port 0 and prints
 * "listening on port N" on stdout; the test kills it when done.
 */
import java.io.*;
import java.net.*;

public class KKMultiServer {
    public static void main(String[] args) throws IOException {

        if (args.length != 1) {
            System.err.println("Usage: java KKMultiServer <port number>");
            System.exit(1);
        }

        int portNumber = Integer.parseInt(args[0]);
        boolean listening = true;

        try (ServerSocket serverSocket =
                 new ServerSocket(portNumber, 50, InetAddress.getLoopbackAddress())) {
            System.out.println("listening on port " + serverSocket.getLocalPort());
            System.out.flush();
            while (listening) {
                new KKMultiServerThread(serverSocket.accept()).start();
            }
        } catch (IOException e) {
            System.err.println("Could not listen on port " + portNumber);
            System.exit(-1);
        }
    }
}
