import json, sys
from helpers import luhn_ok, iban_ok

L = "lookalike"
E, P, C, I, S, V4, V6, K, N = "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IPV4", "IPV6", "SECRET", "PERSON"
cases = []
SPLIT = ["dev"]
def add(group, text, *pii, note=None):
    cases.append((group, text, list(pii), note, SPLIT[0]))

# ---------------- EMAIL ----------------
add("email", "Please send the report to maria.garcia@example.com by Friday.", (E, "maria.garcia@example.com"))
add("email", "Contact: j.smith+billing@acme-corp.co.uk", (E, "j.smith+billing@acme-corp.co.uk"))
add("email", "My address is TOM.BAKER@GMAIL.COM, please use it.", (E, "TOM.BAKER@GMAIL.COM"))
add("email", "cc support_team@helpdesk.io and ops@helpdesk.io", (E, "support_team@helpdesk.io"), (E, "ops@helpdesk.io"))
add("email", "<user>alex99@mail.example.org</user>", (E, "alex99@mail.example.org"))
add("email", '{"email": "priya.sharma@company.in", "plan": "pro"}', (E, "priya.sharma@company.in"))
add("email", "reply-to: noreply-2024@notifications.service.example.net", (E, "noreply-2024@notifications.service.example.net"))
add("email", "(write to chen_wei@uni-heidelberg.de)", (E, "chen_wei@uni-heidelberg.de"))
add("email", "Forwarded from o'neil@example.com? no, from oneil@example.com.", (E, "o'neil@example.com"), (E, "oneil@example.com"))
add("email", "email=first.last@sub.domain.example.travel&ref=nav", (E, "first.last@sub.domain.example.travel"))
add("email", "Sender: a@b.co", (E, "a@b.co"))
add("email", "mailto:kenji.tanaka@example.jp", (E, "kenji.tanaka@example.jp"))
add("email", "I emailed hr@globex.com twice and hr@globex.com never answered.", (E, "hr@globex.com"), (E, "hr@globex.com"))
add("email", "Customer wrote from user.name%tag@example.com yesterday", (E, "user.name%tag@example.com"))
add("email", "Escalate to it-security@bank.example, ticket attached.", (E, "it-security@bank.example"))
add("email", "The login is lena.mueller@web.de; password reset requested", (E, "lena.mueller@web.de"))
add("email", "Hi team, ping fatima.zahra@outlook.com about the invoice", (E, "fatima.zahra@outlook.com"))
add("email", "[sam.o@startup.ai] wants a refund", (E, "sam.o@startup.ai"))
add("email", "contact 12345@numbers.example.com for the raffle", (E, "12345@numbers.example.com"))
add("email", "Send to: Diego_Ramirez@Example.Mx", (E, "Diego_Ramirez@Example.Mx"))

# ---------------- PHONE ----------------
add("phone", "Call me at (415) 555-2671 after 5pm.", (P, "(415) 555-2671"))
add("phone", "My cell is 212-555-0199.", (P, "212-555-0199"))
add("phone", "Phone: 646.555.3890", (P, "646.555.3890"))
add("phone", "reach me on 312 555 0147 anytime", (P, "312 555 0147"))
add("phone", "Toll free 1-800-555-0199", (P, "1-800-555-0199"))
add("phone", "Office (718) 555-0123, fax (718) 555-0124", (P, "(718) 555-0123"), (P, "(718) 555-0124"))
add("phone", "US number +1-202-555-0173 works", (P, "+1-202-555-0173"))
add("phone", "text me: 6175550148", (P, "6175550148"))
add("phone", "London office +44 20 7946 0958", (P, "+44 20 7946 0958"))
add("phone", "Berlin: +49 30 901820 or mobile +49 1512 3456789", (P, "+49 30 901820"), (P, "+49 1512 3456789"))
add("phone", "Paris +33 1 23 45 67 89", (P, "+33 1 23 45 67 89"))
add("phone", "WhatsApp +91 98765 43210 please", (P, "+91 98765 43210"))
add("phone", "Tokyo desk: +81 3-1234-5678", (P, "+81 3-1234-5678"))
add("phone", "Sydney +61 2 9374 4000 (business hours)", (P, "+61 2 9374 4000"))
add("phone", "São Paulo: +55 11 91234-5678", (P, "+55 11 91234-5678"))
add("phone", "Madrid mobile +34 612 34 56 78.", (P, "+34 612 34 56 78"))
add("phone", "Beijing +86 138 0013 8000", (P, "+86 138 0013 8000"))
add("phone", "dial 0049 89 1234567 from abroad", (P, "0049 89 1234567"))
add("phone", "Cape Town office +27 21 123 4567", (P, "+27 21 123 4567"))
add("phone", "CDMX +52 55 1234 5678", (P, "+52 55 1234 5678"))
add("phone", "Dubai +971 50 123 4567", (P, "+971 50 123 4567"))
add("phone", "Moscow +7 495 123-45-67", (P, "+7 495 123-45-67"))
add("phone", "Amsterdam +31 20 123 4567", (P, "+31 20 123 4567"))
add("phone", "Dublin: +353 1 234 5678", (P, "+353 1 234 5678"))
add("phone", "Seoul +82 2-312-3456", (P, "+82 2-312-3456"))
add("phone", "Zurich +41 44 668 18 00", (P, "+41 44 668 18 00"))
add("phone", "Lagos +234 803 123 4567", (P, "+234 803 123 4567"))
add("phone", "Berlin switchboard +49 (0)30 901820", (P, "+49 (0)30 901820"))
add("phone", "Vancouver +1 604 555 0143", (P, "+1 604 555 0143"))
add("phone", "Tel: 555-2671 (internal)", (P, "555-2671"))
add("phone", "Seattle (206) 555-0100 ext 12", (P, "(206) 555-0100"))
add("phone", "Portland 503.555.0172, Denver 720 555 0111", (P, "503.555.0172"), (P, "720 555 0111"))
add("phone", "Mobile: +61 412 345 678", (P, "+61 412 345 678"))

# ---------------- CREDIT CARD ----------------
add("card", "Card number 4111 1111 1111 1111 exp 12/27", (C, "4111 1111 1111 1111"))
add("card", "charged 4012888888881881 twice", (C, "4012888888881881"))
add("card", "use 5555-5555-5555-4444 for the test", (C, "5555-5555-5555-4444"))
add("card", "Amex 3782 822463 10005", (C, "3782 822463 10005"))
add("card", "amex: 371449635398431", (C, "371449635398431"))
add("card", "Discover 6011 1111 1111 1117.", (C, "6011 1111 1111 1117"))
add("card", "JCB 3530 1113 3330 0000", (C, "3530 1113 3330 0000"))
add("card", "Diners 3056 930902 5904", (C, "3056 930902 5904"))
add("card", "Old Visa 4222222222222 (13 digits)", (C, "4222222222222"))
add("card", "Mastercard 2223 0031 2200 3222 declined", (C, "2223 0031 2200 3222"))
add("card", "my card is 5105 1051 0510 5100, cvv 123", (C, "5105 1051 0510 5100"))
add("card", '{"card": "4242-4242-4242-4242", "amount": 12.5}', (C, "4242-4242-4242-4242"))
add("card", "UnionPay 6200 0000 0000 0005", (C, "6200 0000 0000 0005"))
add("card", "Maestro 6759649826438453", (C, "6759649826438453"))
add("card", "card=4532015112830366;exp=0128", (C, "4532015112830366"))
add("card", "Pay with 5425 2334 3010 9903 please", (C, "5425 2334 3010 9903"))
add("card", "Visa 19-digit 4111 1111 1111 1111 110", (C, "4111 1111 1111 1111 110"))
add("card", "refund to 6011000990139424 and 3566002020360505", (C, "6011000990139424"), (C, "3566002020360505"))
add("card", "cc: 4916-3385-0608-2832", (C, "4916-3385-0608-2832"))
add("card", "Diners club 38520000023237 on file", (C, "38520000023237"))
add("card", "The card 4000 0566 5566 5556 was saved", (C, "4000 0566 5566 5556"))
add("card", "Amex 3742 454554 00126 expired", (C, "3742 454554 00126"))

# ---------------- IBAN ----------------
add("iban", "Transfer to DE89 3704 0044 0532 0130 00 today", (I, "DE89 3704 0044 0532 0130 00"))
add("iban", "IBAN: GB82WEST12345698765432", (I, "GB82WEST12345698765432"))
add("iban", "iban FR14 2004 1010 0505 0001 3M02 606", (I, "FR14 2004 1010 0505 0001 3M02 606"))
add("iban", "NL91ABNA0417164300 is my account", (I, "NL91ABNA0417164300"))
add("iban", "Spanish account ES91 2100 0418 4502 0005 1332.", (I, "ES91 2100 0418 4502 0005 1332"))
add("iban", "IT60X0542811101000000123456", (I, "IT60X0542811101000000123456"))
add("iban", "CH93 0076 2011 6238 5295 7 (Swiss)", (I, "CH93 0076 2011 6238 5295 7"))
add("iban", "BE68539007547034", (I, "BE68539007547034"))
add("iban", "Austria AT61 1904 3002 3457 3201", (I, "AT61 1904 3002 3457 3201"))
add("iban", "PL61 1090 1014 0000 0712 1981 2874 (Poland)", (I, "PL61 1090 1014 0000 0712 1981 2874"))
add("iban", "Norway NO93 8601 1117 947", (I, "NO93 8601 1117 947"))
add("iban", "pay IE29AIBK93115212345678 please", (I, "IE29AIBK93115212345678"))
add("iban", "PT50 0002 0123 1234 5678 9015 4", (I, "PT50 0002 0123 1234 5678 9015 4"))
add("iban", "SE4550000000058398257466", (I, "SE4550000000058398257466"))
add("iban", "Danish DK50 0040 0440 1162 43", (I, "DK50 0040 0440 1162 43"))
add("iban", "lowercase de89370400440532013000 also counts", (I, "de89370400440532013000"))
add("iban", "Brazil BR1800360305000010009795493C1", (I, "BR1800360305000010009795493C1"))
add("iban", "Saudi SA03 8000 0000 6080 1016 7519", (I, "SA03 8000 0000 6080 1016 7519"))
add("iban", "UAE: AE070331234567890123456", (I, "AE070331234567890123456"))
add("iban", "Turkey TR33 0006 1005 1978 6457 8413 26", (I, "TR33 0006 1005 1978 6457 8413 26"))
add("iban", "Greece GR16 0110 1250 0000 0001 2300 695", (I, "GR16 0110 1250 0000 0001 2300 695"))
add("iban", "Malta MT84MALT011000012345MTLCAST001S", (I, "MT84MALT011000012345MTLCAST001S"))
add("iban", "Czech CZ65 0800 0000 1920 0014 5399", (I, "CZ65 0800 0000 1920 0014 5399"))

# ---------------- SSN ----------------
add("ssn", "SSN 219-09-9999 on the form", (S, "219-09-9999"))
add("ssn", "my social security number is 457-55-5462", (S, "457-55-5462"))
add("ssn", "ssn: 536 90 4399", (S, "536 90 4399"))
add("ssn", "SSN#001-01-0001", (S, "001-01-0001"))
add("ssn", "The applicant's SSN is 665-12-3456.", (S, "665-12-3456"))
add("ssn", "667-01-2345 (social)", (S, "667-01-2345"))
add("ssn", "SSN: 899-12-3456", (S, "899-12-3456"))
add("ssn", "ssn=123456780", (S, "123456780"))
add("ssn", "Social Security No. 321-54-9876", (S, "321-54-9876"))
add("ssn", '{"ssn": "078-05-1121"}', (S, "078-05-1121"))
add("ssn", "taxpayer 404-38-2291 filed late", (S, "404-38-2291"))
add("ssn", "SSN 512-44-0187 and spouse 512-44-0188", (S, "512-44-0187"), (S, "512-44-0188"))
add("ssn", "ID (SSN) 700-11-2233", (S, "700-11-2233"))
add("ssn", "social security 143 22 9012", (S, "143 22 9012"))
add("ssn", "employee ssn 250-80-1234, dept 12", (S, "250-80-1234"))
add("ssn", "SSN 333-22-4444 verified", (S, "333-22-4444"))

# ---------------- IPv4 ----------------
add("ipv4", "Request from 192.168.1.42 was blocked", (V4, "192.168.1.42"))
add("ipv4", "client_ip=203.0.113.7", (V4, "203.0.113.7"))
add("ipv4", "connect to 10.0.0.1:8080 then retry", (V4, "10.0.0.1"))
add("ipv4", "allowlist 172.16.254.1 and 8.8.8.8.", (V4, "172.16.254.1"), (V4, "8.8.8.8"))
add("ipv4", "[198.51.100.23] GET /index.html 200", (V4, "198.51.100.23"))
add("ipv4", "X-Forwarded-For: 100.64.12.9, 34.117.59.81", (V4, "100.64.12.9"), (V4, "34.117.59.81"))
add("ipv4", "ssh root@45.33.32.156", (V4, "45.33.32.156"))
add("ipv4", "subnet 10.10.0.0/16 routed", (V4, "10.10.0.0"))
add("ipv4", "my home IP is 73.92.184.201", (V4, "73.92.184.201"))
add("ipv4", "ping 255.255.255.255 broadcast", (V4, "255.255.255.255"))
add("ipv4", "DNS 1.1.1.1 is slow", (V4, "1.1.1.1"))
add("ipv4", "host=127.0.0.1 port=5432", (V4, "127.0.0.1"))
add("ipv4", "peer 91.198.174.192 disconnected", (V4, "91.198.174.192"))
add("ipv4", '"ip": "52.14.0.250"', (V4, "52.14.0.250"))
add("ipv4", "Login from 185.220.101.4 (Tor exit)", (V4, "185.220.101.4"))
add("ipv4", "gateway 0.0.0.0 default", (V4, "0.0.0.0"))

# ---------------- IPv6 ----------------
add("ipv6", "Request from 2001:db8:85a3::8a2e:370:7334 blocked", (V6, "2001:db8:85a3::8a2e:370:7334"))
add("ipv6", "full form 2001:0db8:0000:0000:0000:ff00:0042:8329.", (V6, "2001:0db8:0000:0000:0000:ff00:0042:8329"))
add("ipv6", "loopback ::1 only", (V6, "::1"))
add("ipv6", "link-local fe80::1ff:fe23:4567:890a%eth0 seen", (V6, "fe80::1ff:fe23:4567:890a%eth0"))
add("ipv6", "url http://[2001:db8::1]:8080/path", (V6, "2001:db8::1"))
add("ipv6", "mapped ::ffff:192.0.2.128 client", (V6, "::ffff:192.0.2.128"))
add("ipv6", "client_ip=2606:4700:4700::1111", (V6, "2606:4700:4700::1111"))
add("ipv6", "Google DNS 2001:4860:4860::8888 and 2001:4860:4860::8844", (V6, "2001:4860:4860::8888"), (V6, "2001:4860:4860::8844"))
add("ipv6", "fe80::1: neighbor unreachable", (V6, "fe80::1"))
add("ipv6", "from 2a03:2880:f12f:83:face:b00c:0:25de (mobile)", (V6, "2a03:2880:f12f:83:face:b00c:0:25de"))
add("ipv6", "prefix 2001:db8:abcd:12::/64 announced", (V6, "2001:db8:abcd:12::"))
add("ipv6", "IPv6 FE80:0000:0000:0000:0202:B3FF:FE1E:8329", (V6, "FE80:0000:0000:0000:0202:B3FF:FE1E:8329"))
add("ipv6", '"ip": "2400:cb00:2048:1::c629:d7a2"', (V6, "2400:cb00:2048:1::c629:d7a2"))
add("ipv6", "multicast ff02::2 router", (V6, "ff02::2"))

# ---------------- SECRETS ----------------
add("secret", "OPENAI_API_KEY=sk-proj-4fGh7Jk2LmN9pQr3StUv8WxY1zAb6CdE", (K, "sk-proj-4fGh7Jk2LmN9pQr3StUv8WxY1zAb6CdE"))
add("secret", "key sk-ant-api03-Xy7bQ2mN8pL4kJ9hG3fD6sA1zW5eR0tY here", (K, "sk-ant-api03-Xy7bQ2mN8pL4kJ9hG3fD6sA1zW5eR0tY"))
add("secret", "token ghp_16C7e42F292c6912E7710c838347Ae178B4a used in CI", (K, "ghp_16C7e42F292c6912E7710c838347Ae178B4a"))
add("secret", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCD", (K, "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCD"))
add("secret", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", (K, "AKIAIOSFODNN7EXAMPLE"))
add("secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", (K, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
add("secret", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    (K, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"))
add("secret", "curl -H 'Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543' https://api.example.com", (K, "8f14e45fceea167a5a36dedd4bea2543"))
add("secret", "slack xoxb-2048123456-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", (K, "xoxb-2048123456-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"))
add("secret", "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", (K, "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"))
add("secret", "api_key=3f9a2c7e1b8d4f6a0e5c9b2d7a1f4e8c", (K, "3f9a2c7e1b8d4f6a0e5c9b2d7a1f4e8c"))
add("secret", '{"client_secret": "Zq8R2vLm4Tx9Kp1Wn6Yb3Hc7Jd5Fg0Se"}', (K, "Zq8R2vLm4Tx9Kp1Wn6Yb3Hc7Jd5Fg0Se"))
add("secret", "password=hunter2go", (K, "hunter2go"))
add("secret", "db password: Tr0ub4dor&3x", (K, "Tr0ub4dor"), note="value stops at '&' (query-string separator); the tail is missed")
add("secret", "X-API-Key: 7c4a8d09ca3762af61e59520943dc26494f8941b", (K, "7c4a8d09ca3762af61e59520943dc26494f8941b"))
add("secret", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 is my HF token", (K, "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"))
add("secret", "stripe sk_live_51H8xYzAbCdEfGhIjKlMnOpQr", (K, "sk_live_51H8xYzAbCdEfGhIjKlMnOpQr"))
add("secret", "GITLAB_TOKEN=glpat-xR4s9TqLm2Vn8KpB3wYz", (K, "glpat-xR4s9TqLm2Vn8KpB3wYz"))
add("secret", "access_token: ya29a0AfH6SMBx7Kq2Lm9Np4Rt8Vw1Yz3", (K, "ya29a0AfH6SMBx7Kq2Lm9Np4Rt8Vw1Yz3"))
add("secret", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9abcDEF123ghiJKL456mnoPQR789\n-----END RSA PRIVATE KEY-----",
    (K, "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9abcDEF123ghiJKL456mnoPQR789\n-----END RSA PRIVATE KEY-----"))
add("secret", "export REFRESH_TOKEN='1//0gK8xYz2AbCdEf3GhIjKl4MnOp'", (K, "1//0gK8xYz2AbCdEf3GhIjKl4MnOp"))
add("secret", "AWS key ASIAY34FZKBOKMUTVV7A leaked", (K, "ASIAY34FZKBOKMUTVV7A"))
add("secret", "use token=Q2xhdWRlU2VjcmV0MTIzNDU2 for the webhook", (K, "Q2xhdWRlU2VjcmV0MTIzNDU2"))
add("secret", "Bearer abcDEF123456ghiJKL789.", (K, "abcDEF123456ghiJKL789"))
add("secret", "npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 was committed", (K, "npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"))

# ---------------- PERSON ----------------
add("person", "Hi, my name is John Smith and I need help.", (N, "John Smith"))
add("person", "Dr. Emily Chen reviewed the chart.", (N, "Emily Chen"))
add("person", "Thanks,\nRahul Sharma", (N, "Rahul Sharma"))
add("person", "Regards, Sophie Martin", (N, "Sophie Martin"))
add("person", "Dear Mrs. Okonkwo, your order shipped.", (N, "Okonkwo"))
add("person", "Maria Garcia called about her refund.", (N, "Maria Garcia"))
add("person", "Please forward this to Michael O'Brien.", (N, "Michael O'Brien"))
add("person", "Signed,\nAisha Bello", (N, "Aisha Bello"))
add("person", "Mr Thompson wants a callback.", (N, "Thompson"))
add("person", "Ticket reported by Lukas Schneider yesterday.", (N, "Lukas Schneider"))
add("person", "Hi Priya, the model looks better now.", (N, "Priya"))
add("person", "this is Kevin from accounting", (N, "Kevin"))
add("person", "Meeting with Anna Maria Lopez at noon.", (N, "Anna Maria Lopez"))
add("person", "Prof. Hiroshi Tanaka will present.", (N, "Hiroshi Tanaka"))
add("person", "Patient: Fatima Al-Sayed, age 54", (N, "Fatima Al-Sayed"))
add("person", "Ask David Kim whether the deploy finished.", (N, "David Kim"))
add("person", "Jean-Luc Moreau approved the change.", (N, "Jean-Luc Moreau"))
add("person", "Customer name: Oluwaseun Adeyemi", (N, "Oluwaseun Adeyemi"))
add("person", "Best regards,\nCarlos Mendoza", (N, "Carlos Mendoza"))
add("person", "I spoke with Jennifer Lee and Robert Brown.", (N, "Jennifer Lee"), (N, "Robert Brown"))
add("person", "assigned to Wei Zhang", (N, "Wei Zhang"))
add("person", "Hello Ms. Nakamura, thanks for waiting.", (N, "Nakamura"))
add("person", "Sarah J. Connor filed the complaint.", (N, "Sarah J. Connor"))
add("person", "Our rep Tom Becker will reach out.", (N, "Tom Becker"))
add("person", "Ludwig van Beethoven wrote nine symphonies.", (N, "Ludwig van Beethoven"), note="first name not in list, no cue: expected miss for the list-based recognizer")
add("person", "John Smith's laptop was stolen.", (N, "John Smith"))
add("person", "Sincerely, Elena Petrova", (N, "Elena Petrova"))
add("person", "My name is Xiang Li.", (N, "Xiang Li"))
add("person", "Cheers, Liam", (N, "Liam"))
add("person", "The review was done by Grace Hopper.", (N, "Grace Hopper"))
add("person", "Attn: Mohammed Hassan, Billing", (N, "Mohammed Hassan"))
add("person", "Contact Sofia Rossi for access.", (N, "Sofia Rossi"))
add("person", "Sent from Daniel Novak's iPhone", (N, "Daniel Novak"))
add("person", "According to Nguyen Van Minh, the bug is fixed.", (N, "Nguyen Van Minh"), note="surname-first Vietnamese name without a cue: hard case")
add("person", "we escalated to james wilson", (N, "james wilson"), note="lower-case name: hard case")
add("person", "Dear Isabella,\nyour account is ready.", (N, "Isabella"))
add("person", "Approved by Kwame Mensah on Monday.", (N, "Kwame Mensah"))
add("person", "Emma Johansson and Lars Eriksson joined the call.", (N, "Emma Johansson"), (N, "Lars Eriksson"))
add("person", "Thanks Marco!", (N, "Marco"))
add("person", "Bartholomew Quigley disputed the charge.", (N, "Bartholomew Quigley"), note="rare first name, no cue: hard case")
add("person", "Hey Yuki, can you check the logs?", (N, "Yuki"))
add("person", "Ms. Rebecca Stein-Harris left a voicemail.", (N, "Rebecca Stein-Harris"))

# ---------------- MIXED ----------------
add("mixed", "I'm Maria Garcia, reach me at maria.garcia@example.com or (415) 555-2671.",
    (N, "Maria Garcia"), (E, "maria.garcia@example.com"), (P, "(415) 555-2671"))
add("mixed", "Refund 4111 1111 1111 1111 to IBAN DE89 3704 0044 0532 0130 00 for order #A-20931.",
    (C, "4111 1111 1111 1111"), (I, "DE89 3704 0044 0532 0130 00"))
add("mixed", "User 203.0.113.7 (2001:db8::7) posted api_key=9b2d7a1f4e8c3f9a2c7e1b8d4f6a0e5c",
    (V4, "203.0.113.7"), (V6, "2001:db8::7"), (K, "9b2d7a1f4e8c3f9a2c7e1b8d4f6a0e5c"))
add("mixed", "SSN 457-55-5462, DOB 1984-07-12, phone +44 20 7946 0958, version 2.3.1",
    (S, "457-55-5462"), (P, "+44 20 7946 0958"))
add("mixed", '{"name": "Dr. Ahmed Khan", "email": "a.khan@clinic.example", "ip": "10.1.2.3", "visits": 3}',
    (N, "Ahmed Khan"), (E, "a.khan@clinic.example"), (V4, "10.1.2.3"))
add("mixed", "Hi, this is Laura Bianchi. Card 5555 5555 5555 4444 was charged $1,299.00 on 2024-03-15.",
    (N, "Laura Bianchi"), (C, "5555 5555 5555 4444"))
add("mixed", "Ticket #88231: john.doe@corp.example says token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 leaked",
    (E, "john.doe@corp.example"), (K, "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"))
add("mixed", "Call +49 30 901820 or mail kontakt@firma.de; IBAN DE89370400440532013000",
    (P, "+49 30 901820"), (E, "kontakt@firma.de"), (I, "DE89370400440532013000"))
add("mixed", "Order 100234567 for Peter Novak, ship to ZIP 94103, phone 212-555-0199",
    (N, "Peter Novak"), (P, "212-555-0199"))
add("mixed", "Login by emily.chen@example.com from 73.92.184.201 at 2024-05-01T10:22:13Z",
    (E, "emily.chen@example.com"), (V4, "73.92.184.201"))
add("mixed", "Python 3.11.7 on host 192.168.0.12; password=s3cr3t-Pa55",
    (V4, "192.168.0.12"), (K, "s3cr3t-Pa55"))
add("mixed", "Regards,\nChen Wei\n+86 138 0013 8000\nchen.wei@example.cn",
    (N, "Chen Wei"), (P, "+86 138 0013 8000"), (E, "chen.wei@example.cn"))
add("mixed", "Customer Ana Souza (SSN 219-09-9999) paid with 378282246310005 for invoice INV-2024-0042",
    (N, "Ana Souza"), (S, "219-09-9999"), (C, "378282246310005"))
add("mixed", "Authorization: Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5 from ::ffff:10.0.0.5",
    (K, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"), (V6, "::ffff:10.0.0.5"))
add("mixed", "Dear Mr. Fischer, we refunded 6011 1111 1111 1117 and emailed max.fischer@web.de.",
    (N, "Fischer"), (C, "6011 1111 1111 1117"), (E, "max.fischer@web.de"))

# ---------------- LOOK-ALIKES (nothing to mask) ----------------
pass
for text in [
    "Your order #4155552671 has shipped.",
    "Order number 100234567 was delayed.",
    "Invoice INV-2024-00157 is overdue.",
    "Meeting on 2024-03-15 at 14:30:00.",
    "Deadline 03/15/2024, renewal 15.03.2025.",
    "Upgraded Python to 3.11.7 and numpy to 1.26.4.",
    "Release v2.4.10 fixes the crash.",
    "Build 20240315.1 passed all tests.",
    "Ship to ZIP 94103 or 10001-1234.",
    "Timestamp 1700000000 (unix seconds), 1712345678901 ms.",
    "SKU 123-456-7890 is out of stock.",
    "Product code AB-1234-XY restocked.",
    "Card-like number 4111 1111 1111 1112 fails Luhn.",
    "Reference 1234 5678 1234 5678 is not a card.",
    "Tracking 1234567812345678 arrives Monday.",
    "SSN-like 999-12-3456 is invalid (area 9xx).",
    "Invalid SSN 000-12-3456 and 666-12-3456.",
    "Serial 123-00-4567 and 123-45-0000 are not SSNs.",
    "Total: $1,234.56 (was $2,345.67).",
    "Price 1 234 567,89 EUR incl. tax.",
    "ISBN 978-3-16-148410-0 in stock.",
    "Coordinates 37.7749, -122.4194 are in SF.",
    "Server listens on port 8080; PID 41555.",
    "Request id 123e4567-e89b-12d3-a456-426614174000 failed.",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Commit 3f2a9c1 reverted the change.",
    "File size is 1048576 bytes.",
    "Batch 2024-11-05-0003 processed.",
    "Version 4.2.1.0 of the driver.",
    "See section 4.2.1.3 of the spec.",
    "Octets 1.2.3.400 and 256.1.1.1 are invalid.",
    "Windows build 10.0.19041.1 installed.",
    "OID 1.3.6.1.4.1.311 registered.",
    "The job ran at 12:30:45 and 13:01:02.",
    "MAC 00:1A:2B:3C:4D:5E on eth0.",
    "Use std::vector<int> and std::map.",
    "Aspect ratio 16:9, John 3:16.",
    "max_tokens=512, temperature=0.7",
    "The token budget is 4096 tokens.",
    "api_key=YOUR_API_KEY",
    "OPENAI_API_KEY=${OPENAI_API_KEY}",
    "password: ******",
    "We use sk-learn style pipelines.",
    "The secret to good prompts is examples.",
    "request_id=7f9c2ba4e88f827d616045507605853e",
    "Bearer token expired, please log in again.",
    "Mention @channel and @here in Slack.",
    "Install react@18.2.0 and vue@3.4.21.",
    "Decorate with @dspy.worker(name='qa').",
    "user@localhost is not routable.",
    "IBAN-like DE89 3704 0044 0532 0130 01 has a bad checksum.",
    "GB00WEST12345698765432 fails mod 97.",
    "Code XX12 3456 7890 1234 is not a country.",
    "The Python upgrade broke Kafka consumers.",
    "Will the job finish before midnight?",
    "May 2024 release notes are out.",
    "Grace period is 30 days.",
    "Mark as read when done.",
    "Visit New York City and Paris in June.",
    "Amazon Web Services raised prices.",
    "Apple Inc announced a new chip.",
    "Black Friday sale starts at 9am.",
    "Open Visual Studio Code and Jupyter Notebook.",
    "The Support Team will reply within 24 hours.",
    "Dear Customer, thanks for your order.",
    "Regards, The Billing Department",
    "Error 404: Not Found at /api/v1/users.",
    "Temperature 98.6 F, BP 120/80, pulse 72.",
    "Score 0.8734 on 1500 examples.",
    "Call stack depth exceeded 1024 frames.",
    "Flight UA 1234 departs gate B22.",
    "Room 1203, building 7, floor 12.",
    "Account balance -1,250.00 USD",
    "Lot 2023-0815-AB expires 2026-01-31.",
    "Model gpt-4o-mini-2024-07-18 responded.",
    "Kubernetes 1.29.3 with containerd 1.7.13.",
    "The quick brown fox jumps over the lazy dog.",
    "Weights: 0.25, 0.50, 0.25; seed=42.",
    "Range 192-168 in the histogram.",
    "Chapter 3.2.1.4 covers retries.",
]:
    add(L, text)


SPLIT[0] = 'holdout'
exec(open('/tmp/piiwork/holdout_cases.py').read())
SPLIT[0] = 'holdout2'
exec(open('/tmp/piiwork/holdout2_cases.py').read())

# -------- checks --------
ok = True
for group, text, pii, note, split in cases:
    pos = 0
    for kind, sub in pii:
        if sub not in text:
            print("MISSING", group, repr(sub), "in", repr(text)); ok = False
        if kind == C and not luhn_ok(sub.replace(" ", "").replace("-", "")):
            print("BAD LUHN", sub); ok = False
        if kind == I and not iban_ok(sub):
            print("BAD IBAN", sub); ok = False
        if kind == S:
            d = "".join(c for c in sub if c.isdigit())
            if d[:3] in ("000", "666") or d[0] == "9" or d[3:5] == "00" or d[5:] == "0000":
                print("BAD SSN", sub); ok = False
n_lookalike = sum(1 for c in cases if c[0] == L)
print("cases", len(cases), "with pii", len(cases) - n_lookalike, "lookalikes", n_lookalike,
      "spans", sum(len(c[2]) for c in cases))
if not ok:
    sys.exit(1)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    counters = {}
    for group, text, pii, note, split in cases:
        counters[group] = counters.get(group, 0) + 1
        row = {"id": f"{group}-{counters[group]:03d}", "split": split, "text": text,
               "pii": [{"kind": k, "text": t} for k, t in pii]}
        if note:
            row["note"] = note
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
