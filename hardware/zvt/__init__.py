"""ZVT (PA00P016/P015) ECR-side driver: CRC, framing, link, APDU codec, commands, session and serial transport."""
