/* The C ABI end to end, under AddressSanitizer and UBSan (tests/run.sh):
 * a conversation, sealed envelopes through a C "server" that validates and
 * splits, a group, save/restore, safety numbers, and bad input. Every handle
 * is freed, so LeakSanitizer reports any leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratchetbox.h"

static int passed, failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define IS(call, status)                                                          \
    do {                                                                          \
        RbStatus got_ = (call);                                                   \
        if (got_ == (status)) {                                                   \
            passed++;                                                             \
        } else {                                                                  \
            failed++;                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__, \
                    __LINE__, #call, (int)got_, rb_status_message(got_), #status); \
        }                                                                         \
    } while (0)

#define OK(call) IS(call, RB_OK)

/* An account id argument pair. */
#define ID(s) (const uint8_t *)(s), strlen(s)
#define TEXT(s) (const uint8_t *)(s), strlen(s)

enum { BIG = 8192 };
static const uint64_t NOW = 1767225600u; /* 2026-01-01 */
static const uint64_t DAY = 86400u;

/* One party: its device, and its sessions with the others. */
typedef struct {
    const char *name;
    RbDevice *device;
    uint8_t identity[RB_PUBLIC_KEY_LEN];
} Party;

static void new_party(Party *p, const char *name) {
    p->name = name;
    OK(rb_device_new(ID(name), 1, &p->device));
    OK(rb_device_identity_key(p->device, p->identity));
}

/* Sends `text` over `from`, checks that `to` decrypts it to the same text. */
static void send_and_check(RbSession *from, RbSession *to, const char *text) {
    uint8_t wire[BIG], plain[BIG];
    size_t wire_len = 0, plain_len = 0;
    OK(rb_session_encrypt(from, TEXT(text), wire, sizeof wire, &wire_len));
    OK(rb_session_decrypt(to, wire, wire_len, plain, sizeof plain, &plain_len));
    CHECK(plain_len == strlen(text) && memcmp(plain, text, plain_len) == 0);
}

/* Alice starts a session with `bob` from one of his bundles; Bob accepts her
 * first message. */
static void start_session(Party *alice, Party *bob, RbSession **alice_s, RbSession **bob_s) {
    uint8_t bundle[RB_BUNDLE_LEN], identity[RB_PUBLIC_KEY_LEN];
    size_t bundle_len = 0;
    uint32_t device_id = 0;
    OK(rb_device_new_bundle(bob->device, bundle, sizeof bundle, &bundle_len));
    CHECK(bundle_len == RB_BUNDLE_LEN);
    OK(rb_bundle_verify(bundle, bundle_len, identity, &device_id));
    CHECK(memcmp(identity, bob->identity, sizeof identity) == 0 && device_id == 1);
    OK(rb_session_initiate(alice->device, ID(bob->name), bundle, bundle_len, alice_s));

    const char *hello = "hello, this is the first message";
    uint8_t wire[BIG], plain[BIG];
    size_t wire_len = 0, plain_len = 0;
    uint8_t kind = 0;
    OK(rb_session_encrypt(*alice_s, TEXT(hello), wire, sizeof wire, &wire_len));
    CHECK(wire_len == strlen(hello) + RB_PREKEY_MESSAGE_OVERHEAD);
    OK(rb_message_kind(wire, wire_len, &kind));
    CHECK(kind == RB_MESSAGE_PREKEY);
    OK(rb_session_accept(bob->device, ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                         &plain_len, bob_s));
    CHECK(plain_len == strlen(hello) && memcmp(plain, hello, plain_len) == 0);
    /* The same prekey message again is a replay for Bob's device. */
    RbSession *again = NULL;
    IS(rb_session_accept(bob->device, ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                         &plain_len, &again),
       RB_REPEATED_PREKEY_MESSAGE);
    CHECK(again == NULL);
}

static void test_conversation(Party *alice, Party *bob, RbSession **a, RbSession **b) {
    start_session(alice, bob, a, b);
    send_and_check(*b, *a, "hi Alice, got it");
    send_and_check(*a, *b, "good, the ratchet turns");

    /* Three replies, delivered out of order. */
    const char *texts[3] = {"one", "two", "three"};
    uint8_t wires[3][256], plain[256];
    size_t lens[3], plain_len = 0;
    for (int i = 0; i < 3; i++) {
        OK(rb_session_encrypt(*b, TEXT(texts[i]), wires[i], sizeof wires[i], &lens[i]));
        CHECK(lens[i] == strlen(texts[i]) + RB_RATCHET_MESSAGE_OVERHEAD);
    }
    int order[3] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        OK(rb_session_decrypt(*a, wires[i], lens[i], plain, sizeof plain, &plain_len));
        CHECK(plain_len == strlen(texts[i]) && memcmp(plain, texts[i], plain_len) == 0);
    }
    IS(rb_session_decrypt(*a, wires[0], lens[0], plain, sizeof plain, &plain_len),
       RB_DUPLICATE_MESSAGE);
    for (int i = 0; i < 5; i++) {
        send_and_check(*a, *b, "more from Alice");
        send_and_check(*b, *a, "more from Bob");
    }
}

static void test_safety_numbers(Party *alice, Party *bob, RbSession *a, RbSession *b) {
    uint8_t bob_key[RB_PUBLIC_KEY_LEN], alice_key[RB_PUBLIC_KEY_LEN];
    OK(rb_session_remote_identity_key(a, bob_key));
    OK(rb_session_remote_identity_key(b, alice_key));
    CHECK(memcmp(bob_key, bob->identity, RB_PUBLIC_KEY_LEN) == 0);
    CHECK(memcmp(alice_key, alice->identity, RB_PUBLIC_KEY_LEN) == 0);
    uint8_t on_alice[RB_SAFETY_NUMBER_DIGITS], on_bob[RB_SAFETY_NUMBER_DIGITS];
    uint8_t scan_alice[RB_SAFETY_NUMBER_SCANNABLE_LEN], scan_bob[RB_SAFETY_NUMBER_SCANNABLE_LEN];
    OK(rb_safety_number(ID(alice->name), alice->identity, ID(bob->name), bob_key, on_alice,
                        scan_alice));
    OK(rb_safety_number(ID(bob->name), bob->identity, ID(alice->name), alice_key, on_bob,
                        scan_bob));
    CHECK(memcmp(on_alice, on_bob, RB_SAFETY_NUMBER_DIGITS) == 0);
    int matches = -1;
    OK(rb_safety_number_compare(ID(alice->name), alice->identity, ID(bob->name), bob_key,
                                scan_bob, sizeof scan_bob, &matches));
    CHECK(matches == 1);
    /* Alice's own code is not Bob's view of it. */
    OK(rb_safety_number_compare(ID(alice->name), alice->identity, ID(bob->name), bob_key,
                                scan_alice, sizeof scan_alice, &matches));
    CHECK(matches == 0);
    printf("safety number: %.60s\n", (const char *)on_alice);
}

/* The server's registry of delivery access keys. */
typedef struct {
    const char *account;
    uint8_t key[RB_TOKEN_LEN];
} Registration;

typedef struct {
    Registration entries[4];
    size_t count;
    int lookups;
} Registry;

static int32_t lookup(void *ctx, const uint8_t *account, size_t account_len, uint8_t *key_out) {
    Registry *registry = ctx;
    registry->lookups++;
    for (size_t i = 0; i < registry->count; i++) {
        const char *name = registry->entries[i].account;
        if (strlen(name) == account_len && memcmp(name, account, account_len) == 0) {
            memcpy(key_out, registry->entries[i].key, RB_TOKEN_LEN);
            return 1;
        }
    }
    return 0;
}

/* Alice writes one envelope to Bob and Carol: shared content, and each one's
 * own 1:1 message as payload. The server validates and splits it; each
 * recipient opens its part and decrypts its payload. */
static void test_sealed(Party *alice, Party *bob, Party *carol, RbSession *alice_bob,
                        RbSession *bob_alice, RbSession *alice_carol, RbSession *carol_alice) {
    RbKeyPair *root = NULL, *server = NULL;
    OK(rb_keypair_generate(&root));
    OK(rb_keypair_generate(&server));
    RbTrustRoot pinned = {.id = 1};
    OK(rb_keypair_public_key(root, pinned.key));
    RbTrustStore *trust = NULL;
    OK(rb_trust_store_new(&pinned, 1, &trust));

    uint8_t server_cert[512], cert[1024];
    size_t server_cert_len = 0, cert_len = 0;
    IS(rb_server_certificate_issue(root, 1, server, 7, server_cert, 4, &server_cert_len),
       RB_BUFFER_TOO_SMALL);
    OK(rb_server_certificate_issue(root, 1, server, 7, server_cert, sizeof server_cert,
                                   &server_cert_len));
    OK(rb_sender_certificate_issue(server, server_cert, server_cert_len, ID(alice->name), 1,
                                   alice->identity, NOW + DAY, cert, sizeof cert, &cert_len));

    /* Bob and Carol register access keys and give them to Alice. */
    Registry registry = {.count = 2};
    registry.entries[0].account = bob->name;
    registry.entries[1].account = carol->name;
    uint8_t secret[32];
    memset(secret, 0xB0, sizeof secret);
    OK(rb_delivery_access_key_derive(secret, registry.entries[0].key));
    memset(secret, 0xCA, sizeof secret);
    OK(rb_delivery_access_key_derive(secret, registry.entries[1].key));
    uint8_t token[RB_TOKEN_LEN];
    for (int i = 0; i < RB_TOKEN_LEN; i++) {
        token[i] = registry.entries[0].key[i] ^ registry.entries[1].key[i];
    }

    uint8_t to_bob[BIG], to_carol[BIG];
    size_t to_bob_len = 0, to_carol_len = 0;
    OK(rb_session_encrypt(alice_bob, TEXT("for Bob only"), to_bob, sizeof to_bob, &to_bob_len));
    OK(rb_session_encrypt(alice_carol, TEXT("for Carol only"), to_carol, sizeof to_carol,
                          &to_carol_len));
    RbMultiRecipient recipients[2] = {
        {.account_id = (const uint8_t *)carol->name, .account_id_len = strlen(carol->name),
         .device_id = 1, .payload = to_carol, .payload_len = to_carol_len},
        {.account_id = (const uint8_t *)bob->name, .account_id_len = strlen(bob->name),
         .device_id = 1, .payload = to_bob, .payload_len = to_bob_len},
    };
    memcpy(recipients[0].identity_key, carol->identity, RB_PUBLIC_KEY_LEN);
    memcpy(recipients[1].identity_key, bob->identity, RB_PUBLIC_KEY_LEN);
    uint8_t envelope[BIG];
    size_t envelope_len = 0;
    IS(rb_sealed_seal_multi(alice->device, cert, cert_len, recipients, 2, RB_INNER_OPAQUE,
                            TEXT("hello both"), token, envelope, 16, &envelope_len),
       RB_BUFFER_TOO_SMALL);
    size_t needed = envelope_len;
    CHECK(needed > 16 && needed <= sizeof envelope);
    OK(rb_sealed_seal_multi(alice->device, cert, cert_len, recipients, 2, RB_INNER_OPAQUE,
                            TEXT("hello both"), token, envelope, sizeof envelope, &envelope_len));
    CHECK(envelope_len == needed);

    /* The server: validate, then split. */
    RbServerPolicy policy;
    OK(rb_server_policy_default(&policy));
    RbEnvelopeInfo info;
    OK(rb_envelope_validate(envelope, envelope_len, &policy, lookup, &registry, &info));
    CHECK(info.kind == RB_ENVELOPE_MULTI && info.recipient_count == 2);
    CHECK(registry.lookups > 0);
    uint8_t split[BIG];
    RbSplitPart parts[2];
    size_t split_len = 0, parts_len = 0;
    IS(rb_envelope_split(envelope, envelope_len, &policy, lookup, &registry, split, 10, &split_len,
                         parts, 2, &parts_len),
       RB_BUFFER_TOO_SMALL);
    CHECK(split_len == info.split_len && parts_len == 2);
    IS(rb_envelope_split(envelope, envelope_len, &policy, lookup, &registry, split, sizeof split,
                         &split_len, parts, 1, &parts_len),
       RB_BUFFER_TOO_SMALL);
    OK(rb_envelope_split(envelope, envelope_len, &policy, lookup, &registry, split, sizeof split,
                         &split_len, parts, 2, &parts_len));
    CHECK(split_len == info.split_len && parts_len == 2);
    /* A wrong token is refused; so is an envelope with one byte changed in its header. */
    uint8_t saved = registry.entries[0].key[0];
    registry.entries[0].key[0] ^= 1;
    IS(rb_envelope_validate(envelope, envelope_len, &policy, lookup, &registry, &info),
       RB_ENVELOPE_WRONG_TOKEN);
    registry.entries[0].key[0] = saved;
    IS(rb_envelope_validate(envelope, envelope_len - 1, NULL, lookup, &registry, &info),
       RB_ENVELOPE_INVALID_PADDING);

    /* Each recipient opens the part routed to it. */
    for (size_t i = 0; i < parts_len; i++) {
        int is_bob = parts[i].account_id_len == strlen(bob->name) &&
                     memcmp(parts[i].account_id, bob->name, strlen(bob->name)) == 0;
        Party *to = is_bob ? bob : carol;
        Party *other = is_bob ? carol : bob;
        RbSession *session = is_bob ? bob_alice : carol_alice;
        const char *expected = is_bob ? "for Bob only" : "for Carol only";
        CHECK(parts[i].device_id == 1);
        const uint8_t *part = split + parts[i].offset;
        RbSender sender;
        uint8_t message[BIG], payload[BIG], plain[BIG];
        size_t message_len = 0, payload_len = 0, plain_len = 0;
        IS(rb_sealed_open(to->device, trust, NOW, part, parts[i].len, &sender, message, 2,
                          &message_len, payload, sizeof payload, &payload_len),
           RB_BUFFER_TOO_SMALL);
        CHECK(message_len == strlen("hello both"));
        OK(rb_sealed_open(to->device, trust, NOW, part, parts[i].len, &sender, message,
                          sizeof message, &message_len, payload, sizeof payload, &payload_len));
        CHECK(message_len == strlen("hello both") && memcmp(message, "hello both", 10) == 0);
        CHECK(sender.account_id_len == strlen(alice->name) &&
              memcmp(sender.account_id, alice->name, sender.account_id_len) == 0);
        CHECK(sender.device_id == 1 && sender.kind == RB_INNER_OPAQUE);
        CHECK(memcmp(sender.identity_key, alice->identity, RB_PUBLIC_KEY_LEN) == 0);
        OK(rb_session_decrypt(session, payload, payload_len, plain, sizeof plain, &plain_len));
        CHECK(plain_len == strlen(expected) && memcmp(plain, expected, plain_len) == 0);
        /* The other recipient cannot open this part; an expired certificate fails. */
        CHECK(rb_sealed_open(other->device, trust, NOW, part, parts[i].len, &sender, message,
                             sizeof message, &message_len, payload, sizeof payload,
                             &payload_len) != RB_OK);
        IS(rb_sealed_open(to->device, trust, NOW + 2 * DAY, part, parts[i].len, &sender, message,
                          sizeof message, &message_len, payload, sizeof payload, &payload_len),
           RB_CERTIFICATE_EXPIRED);
    }

    /* A single-recipient envelope: Bob's reply, routed as it is. */
    uint8_t bob_cert[1024], reply[512], single[BIG];
    size_t bob_cert_len = 0, reply_len = 0, single_len = 0;
    OK(rb_sender_certificate_issue(server, server_cert, server_cert_len, ID(bob->name), 1,
                                   bob->identity, NOW + DAY, bob_cert, sizeof bob_cert,
                                   &bob_cert_len));
    OK(rb_session_encrypt(bob_alice, TEXT("sealed reply"), reply, sizeof reply, &reply_len));
    Registry alice_registry = {.count = 1};
    alice_registry.entries[0].account = alice->name;
    memset(secret, 0xA1, sizeof secret);
    OK(rb_delivery_access_key_derive(secret, alice_registry.entries[0].key));
    OK(rb_sealed_seal(bob->device, bob_cert, bob_cert_len, ID(alice->name), 1, alice->identity,
                      RB_INNER_RATCHET, reply, reply_len, alice_registry.entries[0].key, single,
                      sizeof single, &single_len));
    OK(rb_envelope_validate(single, single_len, NULL, lookup, &alice_registry, &info));
    CHECK(info.kind == RB_ENVELOPE_SINGLE && info.recipient_count == 1);
    IS(rb_envelope_validate(single, single_len, NULL, lookup, &registry, &info),
       RB_ENVELOPE_UNKNOWN_RECIPIENT);
    RbSender sender;
    uint8_t message[BIG], plain[BIG];
    size_t message_len = 0, payload_len = 0, plain_len = 0;
    OK(rb_sealed_open(alice->device, trust, NOW, single, single_len, &sender, message,
                      sizeof message, &message_len, NULL, 0, &payload_len));
    CHECK(payload_len == 0 && sender.kind == RB_INNER_RATCHET);
    OK(rb_session_decrypt(alice_bob, message, message_len, plain, sizeof plain, &plain_len));
    CHECK(plain_len == 12 && memcmp(plain, "sealed reply", 12) == 0);
    /* A revoked server key: the certificate stops validating. */
    OK(rb_trust_store_revoke(trust, 7));
    IS(rb_sealed_open(alice->device, trust, NOW, single, single_len, &sender, message,
                      sizeof message, &message_len, NULL, 0, &payload_len),
       RB_CERTIFICATE_REVOKED);

    rb_trust_store_free(trust);
    rb_keypair_free(server);
    rb_keypair_free(root);
}

/* Alice's group chain reaches Bob and Carol over their 1:1 sessions. */
static void test_group(Party *alice, Party *bob, Party *carol, RbSession *alice_bob,
                       RbSession *bob_alice, RbSession *alice_carol, RbSession *carol_alice,
                       RbGroup **groups) {
    const char *group_id = "team";
    for (int i = 0; i < 3; i++) {
        OK(rb_group_create(ID(group_id), &groups[i]));
    }
    uint8_t distribution[1024], wire[BIG], plain[BIG];
    size_t distribution_len = 0, wire_len = 0, plain_len = 0;
    OK(rb_group_distribution(groups[0], distribution, sizeof distribution, &distribution_len));
    RbSession *out[2] = {alice_bob, alice_carol};
    RbSession *in[2] = {bob_alice, carol_alice};
    for (int i = 0; i < 2; i++) {
        OK(rb_session_encrypt(out[i], distribution, distribution_len, wire, sizeof wire,
                              &wire_len));
        OK(rb_session_decrypt(in[i], wire, wire_len, plain, sizeof plain, &plain_len));
        OK(rb_group_process_distribution(groups[i + 1], ID(alice->name), 1, plain, plain_len));
    }
    const char *text = "hello team";
    OK(rb_group_encrypt(groups[0], TEXT(text), wire, sizeof wire, &wire_len));
    CHECK(wire_len == strlen(text) + rb_group_message_overhead(strlen(group_id)));
    for (int i = 1; i < 3; i++) {
        /* Too short a buffer first: the message key must survive it. */
        IS(rb_group_decrypt(groups[i], ID(alice->name), 1, wire, wire_len, plain, 3, &plain_len),
           RB_BUFFER_TOO_SMALL);
        CHECK(plain_len == strlen(text));
        OK(rb_group_decrypt(groups[i], ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                            &plain_len));
        CHECK(plain_len == strlen(text) && memcmp(plain, text, plain_len) == 0);
        IS(rb_group_decrypt(groups[i], ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                            &plain_len),
           RB_DUPLICATE_MESSAGE);
    }
    /* Carol is not a sender Bob knows; a tampered signature fails. */
    IS(rb_group_decrypt(groups[1], ID(carol->name), 1, wire, wire_len, plain, sizeof plain,
                        &plain_len),
       RB_NOT_A_MEMBER);
    OK(rb_group_encrypt(groups[0], TEXT(text), wire, sizeof wire, &wire_len));
    wire[wire_len - 1] ^= 0x01;
    IS(rb_group_decrypt(groups[1], ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                        &plain_len),
       RB_INVALID_SIGNATURE);
    (void)bob;
}

/* Everything sealed at rest, freed, restored, and used again. */
static void test_save_restore(Party *alice, Party *bob, RbSession **a, RbSession **b,
                              RbGroup **alice_group, RbGroup **bob_group) {
    uint8_t key[RB_STORAGE_KEY_LEN], wrong[RB_STORAGE_KEY_LEN];
    OK(rb_storage_key_generate(key));
    OK(rb_storage_key_generate(wrong));
    static uint8_t device_blob[2][65536];
    uint8_t session_blob[2][BIG], group_blob[2][BIG];
    size_t device_len[2], session_len[2], group_len[2];
    Party *parties[2] = {alice, bob};
    RbSession **sessions[2] = {a, b};
    RbGroup **groups[2] = {alice_group, bob_group};
    for (int i = 0; i < 2; i++) {
        IS(rb_device_save(parties[i]->device, key, device_blob[i], 8, &device_len[i]),
           RB_BUFFER_TOO_SMALL);
        CHECK(device_len[i] > 8 && device_len[i] <= sizeof device_blob[i]);
        OK(rb_device_save(parties[i]->device, key, device_blob[i], sizeof device_blob[i],
                          &device_len[i]));
        OK(rb_session_save(*sessions[i], key, session_blob[i], sizeof session_blob[i],
                           &session_len[i]));
        OK(rb_group_save(*groups[i], key, group_blob[i], sizeof group_blob[i], &group_len[i]));
        rb_device_free(parties[i]->device);
        rb_session_free(*sessions[i]);
        rb_group_free(*groups[i]);
        parties[i]->device = NULL;
        *sessions[i] = NULL;
        *groups[i] = NULL;
    }
    RbDevice *device = NULL;
    RbSession *session = NULL;
    RbGroup *group = NULL;
    IS(rb_device_restore(wrong, device_blob[0], device_len[0], &device),
       RB_STORAGE_WRONG_KEY_OR_CORRUPTED);
    IS(rb_session_restore(wrong, session_blob[0], session_len[0], &session),
       RB_STORAGE_WRONG_KEY_OR_CORRUPTED);
    IS(rb_group_restore(key, session_blob[0], session_len[0], &group), RB_STORAGE_WRONG_KIND);
    IS(rb_device_restore(key, device_blob[0], device_len[0] - 1, &device), RB_STORAGE_TRUNCATED);
    device_blob[0][device_len[0] - 1] ^= 0x01;
    IS(rb_device_restore(key, device_blob[0], device_len[0], &device),
       RB_STORAGE_WRONG_KEY_OR_CORRUPTED);
    device_blob[0][device_len[0] - 1] ^= 0x01;
    CHECK(device == NULL && session == NULL && group == NULL);
    for (int i = 0; i < 2; i++) {
        OK(rb_device_restore(key, device_blob[i], device_len[i], &parties[i]->device));
        OK(rb_session_restore(key, session_blob[i], session_len[i], sessions[i]));
        OK(rb_group_restore(key, group_blob[i], group_len[i], groups[i]));
        uint8_t identity[RB_PUBLIC_KEY_LEN];
        OK(rb_device_identity_key(parties[i]->device, identity));
        CHECK(memcmp(identity, parties[i]->identity, RB_PUBLIC_KEY_LEN) == 0);
    }
    send_and_check(*a, *b, "still there after the restart?");
    send_and_check(*b, *a, "yes");
    uint8_t wire[BIG], plain[BIG];
    size_t wire_len = 0, plain_len = 0;
    OK(rb_group_encrypt(*alice_group, TEXT("group after restart"), wire, sizeof wire, &wire_len));
    OK(rb_group_decrypt(*bob_group, ID(alice->name), 1, wire, wire_len, plain, sizeof plain,
                        &plain_len));
    CHECK(plain_len == 19 && memcmp(plain, "group after restart", 19) == 0);
    /* Bob's restored device still hands out working bundles. */
    Party fresh;
    new_party(&fresh, "dave");
    RbSession *dave_bob = NULL, *bob_dave = NULL;
    start_session(&fresh, bob, &dave_bob, &bob_dave);
    send_and_check(bob_dave, dave_bob, "welcome, Dave");
    rb_session_free(dave_bob);
    rb_session_free(bob_dave);
    rb_device_free(fresh.device);
}

static void test_bad_input(Party *alice, RbSession *a, RbSession *b) {
    RbDevice *device = NULL;
    uint8_t buf[BIG], plain[BIG];
    size_t len = 0, plain_len = 0;
    uint8_t long_id[65];
    memset(long_id, 'x', sizeof long_id);

    /* NULL pointers. */
    IS(rb_device_new(NULL, 5, 1, &device), RB_NULL_ARGUMENT);
    IS(rb_device_new(ID("alice"), 1, NULL), RB_NULL_ARGUMENT);
    IS(rb_device_identity_key(NULL, buf), RB_NULL_ARGUMENT);
    IS(rb_device_identity_key(alice->device, NULL), RB_NULL_ARGUMENT);
    IS(rb_device_new_bundle(alice->device, NULL, 100, &len), RB_NULL_ARGUMENT);
    IS(rb_device_new_bundle(alice->device, buf, sizeof buf, NULL), RB_NULL_ARGUMENT);
    IS(rb_session_encrypt(NULL, TEXT("x"), buf, sizeof buf, &len), RB_NULL_ARGUMENT);
    IS(rb_session_encrypt(a, NULL, 5, buf, sizeof buf, &len), RB_NULL_ARGUMENT);
    IS(rb_session_decrypt(b, NULL, 100, plain, sizeof plain, &plain_len), RB_NULL_ARGUMENT);
    IS(rb_group_create(NULL, 3, NULL), RB_NULL_ARGUMENT);
    IS(rb_envelope_validate(buf, 10, NULL, NULL, NULL, NULL), RB_NULL_ARGUMENT);
    RbEnvelopeInfo info;
    memset(buf, 0, 100);
    IS(rb_envelope_validate(buf, 100, NULL, NULL, NULL, &info), RB_NULL_ARGUMENT);
    Registry empty = {.count = 0};
    IS(rb_envelope_validate(buf, 100, NULL, lookup, &empty, &info), RB_ENVELOPE_UNKNOWN_VERSION);
    IS(rb_envelope_validate(buf, 0, NULL, lookup, &empty, &info), RB_ENVELOPE_TRUNCATED);
    IS(rb_trust_store_new(NULL, 1, NULL), RB_NULL_ARGUMENT);
    IS(rb_storage_key_generate(NULL), RB_NULL_ARGUMENT);
    CHECK(device == NULL);

    /* Bad account ids. */
    IS(rb_device_new((const uint8_t *)"", 0, 1, &device), RB_INVALID_ARGUMENT);
    IS(rb_device_new(long_id, sizeof long_id, 1, &device), RB_INVALID_ARGUMENT);
    CHECK(device == NULL);

    /* Short buffers: the needed length comes back and nothing advances. */
    const char *text = "sixteen bytes!!!";
    IS(rb_session_encrypt(a, TEXT(text), buf, 10, &len), RB_BUFFER_TOO_SMALL);
    CHECK(len == strlen(text) + RB_RATCHET_MESSAGE_OVERHEAD);
    IS(rb_session_encrypt(a, TEXT(text), NULL, 0, &len), RB_BUFFER_TOO_SMALL);
    CHECK(len == strlen(text) + RB_RATCHET_MESSAGE_OVERHEAD);
    OK(rb_session_encrypt(a, TEXT(text), buf, len, &len));
    IS(rb_session_decrypt(b, buf, len, plain, 15, &plain_len), RB_BUFFER_TOO_SMALL);
    CHECK(plain_len == strlen(text));
    OK(rb_session_decrypt(b, buf, len, plain, plain_len, &plain_len));
    CHECK(plain_len == strlen(text) && memcmp(plain, text, plain_len) == 0);

    /* Garbage and tampered bytes. */
    OK(rb_session_encrypt(a, TEXT(text), buf, sizeof buf, &len));
    buf[len - 1] ^= 0x80;
    IS(rb_session_decrypt(b, buf, len, plain, sizeof plain, &plain_len), RB_DECRYPTION_FAILED);
    buf[len - 1] ^= 0x80;
    OK(rb_session_decrypt(b, buf, len, plain, sizeof plain, &plain_len));
    uint8_t garbage[300];
    for (size_t i = 0; i < sizeof garbage; i++) {
        garbage[i] = (uint8_t)(i * 131 + 7);
    }
    IS(rb_session_decrypt(b, garbage, sizeof garbage, plain, sizeof plain, &plain_len),
       RB_DECODE_ERROR);
    IS(rb_session_decrypt(b, garbage, 3, plain, sizeof plain, &plain_len), RB_DECODE_ERROR);
    uint8_t kind = 0;
    IS(rb_message_kind(garbage, 0, &kind), RB_DECODE_ERROR);
    uint8_t identity[RB_PUBLIC_KEY_LEN];
    uint32_t device_id = 0;
    IS(rb_bundle_verify(garbage, sizeof garbage, identity, &device_id), RB_DECODE_ERROR);
    size_t bundle_len = 0;
    OK(rb_device_new_bundle(alice->device, buf, sizeof buf, &bundle_len));
    buf[1 + 32 + 4 + 4 + 32] ^= 0x01; /* a byte of the signed prekey's signature */
    IS(rb_bundle_verify(buf, bundle_len, identity, &device_id), RB_INVALID_SIGNATURE);
    RbSession *session = NULL;
    IS(rb_session_initiate(alice->device, ID("bob"), buf, bundle_len, &session),
       RB_INVALID_SIGNATURE);
    IS(rb_session_accept(alice->device, ID("bob"), 1, garbage, sizeof garbage, plain,
                         sizeof plain, &plain_len, &session),
       RB_DECODE_ERROR);
    CHECK(session == NULL);
    RbGroup *group = NULL;
    OK(rb_group_create(ID("g"), &group));
    IS(rb_group_process_distribution(group, ID("bob"), 1, garbage, sizeof garbage),
       RB_DECODE_ERROR);
    IS(rb_group_decrypt(group, ID("bob"), 1, garbage, 5, plain, sizeof plain, &plain_len),
       RB_DECODE_ERROR);
    rb_group_free(group);
    IS(rb_device_restore(buf, garbage, sizeof garbage, &device), RB_STORAGE_TRUNCATED);
    IS(rb_session_restore(buf, garbage, sizeof garbage, &session), RB_STORAGE_NOT_SEALED);
    IS(rb_session_restore(buf, garbage, 0, &session), RB_STORAGE_TRUNCATED);
    RbKeyPair *keypair = NULL;
    OK(rb_keypair_generate(&keypair));
    uint8_t cert[1024];
    size_t cert_len = 0;
    IS(rb_sender_certificate_issue(keypair, garbage, 20, ID("alice"), 1, alice->identity, NOW,
                                   cert, sizeof cert, &cert_len),
       RB_DECODE_ERROR);
    rb_keypair_free(keypair);

    /* Status messages. */
    CHECK(strcmp(rb_status_message(RB_OK), "ok") == 0);
    CHECK(rb_status_message(RB_PANIC) != NULL);
    CHECK(strcmp(rb_status_message(-1), "unknown status") == 0);
    CHECK(strcmp(rb_status_message(10000), "unknown status") == 0);

    /* Freeing NULL is a no-op. */
    rb_device_free(NULL);
    rb_session_free(NULL);
    rb_group_free(NULL);
    rb_keypair_free(NULL);
    rb_trust_store_free(NULL);
}

int main(void) {
    Party alice, bob, carol;
    new_party(&alice, "alice");
    new_party(&bob, "bob");
    new_party(&carol, "carol");
    RbSession *alice_bob = NULL, *bob_alice = NULL, *alice_carol = NULL, *carol_alice = NULL;
    RbGroup *groups[3] = {NULL, NULL, NULL};

    test_conversation(&alice, &bob, &alice_bob, &bob_alice);
    start_session(&alice, &carol, &alice_carol, &carol_alice);
    test_safety_numbers(&alice, &bob, alice_bob, bob_alice);
    test_sealed(&alice, &bob, &carol, alice_bob, bob_alice, alice_carol, carol_alice);
    test_group(&alice, &bob, &carol, alice_bob, bob_alice, alice_carol, carol_alice, groups);
    test_save_restore(&alice, &bob, &alice_bob, &bob_alice, &groups[0], &groups[1]);
    test_bad_input(&alice, alice_bob, bob_alice);

    rb_session_free(alice_bob);
    rb_session_free(bob_alice);
    rb_session_free(alice_carol);
    rb_session_free(carol_alice);
    for (int i = 0; i < 3; i++) {
        rb_group_free(groups[i]);
    }
    rb_device_free(alice.device);
    rb_device_free(bob.device);
    rb_device_free(carol.device);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
