#include <stdio.h>
#include <string.h>
#include "ratchetbox.h"

#define TRY(call) do { RbStatus s_ = (call); if (s_ != RB_OK) { \
    fprintf(stderr, "%s: %s\n", #call, rb_status_message(s_)); return 1; } } while (0)
#define STR(s) (const uint8_t *)(s), strlen(s)

int main(void) {
    RbDevice *alice = NULL, *bob = NULL;
    RbSession *to_bob = NULL, *to_alice = NULL;
    uint8_t bundle[RB_BUNDLE_LEN], wire[2048], text[2048];
    size_t bundle_len, wire_len, text_len;
    /* Each app creates its device; Bob publishes a bundle through the server. */
    TRY(rb_device_new(STR("alice"), 1, &alice));
    TRY(rb_device_new(STR("bob"), 1, &bob));
    TRY(rb_device_new_bundle(bob, bundle, sizeof bundle, &bundle_len));

    /* Alice checks the bundle, starts a session with bob/1 and writes. */
    TRY(rb_session_initiate(alice, STR("bob"), bundle, bundle_len, &to_bob));
    TRY(rb_session_encrypt(to_bob, STR("hello Bob"), wire, sizeof wire, &wire_len));

    /* Bob accepts the first message from alice/1: that creates his side. */
    TRY(rb_session_accept(bob, STR("alice"), 1, wire, wire_len,
                          text, sizeof text, &text_len, &to_alice));
    printf("bob reads: %.*s\n", (int)text_len, (const char *)text);

    /* A short buffer is no error of the protocol: the length needed comes back. */
    RbStatus s = rb_session_encrypt(to_alice, STR("hi Alice"), wire, 8, &wire_len);
    printf("8 bytes: %s (needs %zu)\n", rb_status_message(s), wire_len);
    TRY(rb_session_encrypt(to_alice, STR("hi Alice"), wire, sizeof wire, &wire_len));
    TRY(rb_session_decrypt(to_bob, wire, wire_len, text, sizeof text, &text_len));
    printf("alice reads: %.*s\n", (int)text_len, (const char *)text);

    rb_session_free(to_bob);
    rb_session_free(to_alice);
    rb_device_free(alice);
    rb_device_free(bob);
    return 0;
}
