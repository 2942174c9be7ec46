/*
 * A one-client Knock Knock server in the style of the Java sockets tutorial's
 * KnockKnockServer: accept, greet, then answer each line through KnockKnockProtocol until
 * "Bye.". For sockkit's interop tests it binds loopback only and accepts port 0, printing
 * "listening on port N" on stdout so the test learns the port.
 */
import java.io.*;
import java.net.*;

public class KnockKnockServer {
    public static void main(String[] args) throws IOException {

        if (args.length != 1) {
            System.err.println("Usage: java KnockKnockServer <port number>");
            System.exit(1);
        }

        int portNumber = Integer.parseInt(args[0]);

        try (
            ServerSocket serverSocket =
                new ServerSocket(portNumber, 50, InetAddress.getLoopbackAddress());
        ) {
            System.out.println("listening on port " + serverSocket.getLocalPort());
            System.out.flush();
            try (
                Socket clientSocket = serverSocket.accept();
                PrintWriter out =
                    new PrintWriter(clientSocket.getOutputStream(), true);
                BufferedReader in = new BufferedReader(
                    new InputStreamReader(clientSocket.getInputStream()));
            ) {
                String inputLine, outputLine;

                // Initiate conversation with client
                KnockKnockProtocol kkp = new KnockKnockProtocol();
                outputLine = kkp.processInput(null);
                out.println(outputLine);

                while ((inputLine = in.readLine()) != null) {
                    outputLine = kkp.processInput(inputLine);
                    out.println(outputLine);
                    if (outputLine.equals("Bye."))
                        break;
                }
            }
        } catch (IOException e) {
            System.err.println("Exception caught when trying to listen on port "
                + portNumber + " or listening for a connection");
            System.err.println(e.getMessage());
            System.exit(1);
        }
    }
}
