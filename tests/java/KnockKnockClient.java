/*
 * The Java sockets tutorial's KnockKnockClient, made automatic for sockkit's interop tests:
 * it reads the server's lines and prints them as "Server: ...", and answers each from a
 * script file (one answer per line) instead of the keyboard, printing "Client: ...". It
 * stops at "Bye." as the tutorial's does, or when the script runs out. A read timeout keeps
 * a silent server from hanging the test.
 */
import java.io.*;
import java.net.*;

public class KnockKnockClient {
    public static void main(String[] args) throws IOException {

        if (args.length != 3) {
            System.err.println(
                "Usage: java KnockKnockClient <host name> <port number> <script file>");
            System.exit(1);
        }

        String hostName = args[0];
        int portNumber = Integer.parseInt(args[1]);

        try (
            Socket kkSocket = new Socket(hostName, portNumber);
            PrintWriter out = new PrintWriter(kkSocket.getOutputStream(), true);
            BufferedReader in = new BufferedReader(
                new InputStreamReader(kkSocket.getInputStream()));
            BufferedReader script = new BufferedReader(new FileReader(args[2]));
        ) {
            kkSocket.setSoTimeout(10000);
            String fromServer;
            String fromUser;

            while ((fromServer = in.readLine()) != null) {
                System.out.println("Server: " + fromServer);
                if (fromServer.equals("Bye."))
                    break;

                fromUser = script.readLine();
                if (fromUser == null)
                    break;
                System.out.println("Client: " + fromUser);
                out.println(fromUser);
            }
            // The tutorial's client ends at "Bye."; say whether the server then closed.
            System.out.println(in.readLine() == null ? "(server closed)" : "(server kept talking)");
        } catch (UnknownHostException e) {
            System.err.println("Don't know about host " + hostName);
            System.exit(1);
        } catch (IOException e) {
            System.err.println("Couldn't get I/O for the connection to " +
                hostName + ": " + e.getMessage());
            System.exit(1);
        }
    }
}
