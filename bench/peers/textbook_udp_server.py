# The textbook's UDPServer (Kurose & Ross §2.7), as printed, with the typo fixed
# (modified_mesasge) and the port from the command line. Python 3.
# Usage: python3 textbook_udp_server.py PORT
import sys
from socket import *

server_port = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
server_socket = socket(AF_INET, SOCK_DGRAM)
server_socket.bind(('127.0.0.1', server_port))
print("The server is ready to receive", flush=True)
while True:
    message, client_address = server_socket.recvfrom(2048)
    modified_message = message.decode().upper()
    server_socket.sendto(modified_message.encode(), client_address)
