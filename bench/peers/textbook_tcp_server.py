# The textbook's TCPServer (Kurose & Ross §2.7), as printed, with two fixes so it runs at all:
# Python 3 (the text's client uses raw_input) and the bind() the listing forgets; the port
# comes from the command line. One client at a time: accept, one recv(1024), reply, close.
# Usage: python3 textbook_tcp_server.py PORT
import sys
from socket import *

server_port = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
server_socket = socket(AF_INET, SOCK_STREAM)
server_socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
server_socket.bind(('127.0.0.1', server_port))
server_socket.listen(1)
print("The server is ready to receive", flush=True)
while True:
    connection_socket, addr = server_socket.accept()
    sentence = connection_socket.recv(1024).decode()
    capitalized_sentence = sentence.upper()
    connection_socket.send(capitalized_sentence.encode())
    connection_socket.close()
