/*
 * src/audiotricks.h
 *		Shared by every file of the audiotricks extension: its GUC variables
 *		and constants.  Each module's functions are declared in its own
 *		header.
 */
#ifndef AUDIOTRICKS_H
#define AUDIOTRICKS_H


#define AT_SCHEMA			"audiotricks"

/* GUC variables (src/audiotricks.c) */
extern char *audiotricks_jwt_secret;
extern char *audiotricks_jwt_role;
extern int	audiotricks_session_ttl;	/* seconds */
extern int	audiotricks_session_max_lifetime;	/* seconds */
extern int	audiotricks_bcrypt_cost;

/* bumped whenever audiotricks.jwt_secret or audiotricks.jwt_role changes */
extern uint64 audiotricks_jwt_secret_generation;

/* true when the library was loaded by shared_preload_libraries */
extern bool audiotricks_preloaded;

/* GUC variables of src/throttle.c */
extern int	audiotricks_max_failed_logins;
extern int	audiotricks_failed_login_window;
extern int	audiotricks_throttle_slots;

/* GUC variables of src/admission.c: admission control for password hashing */
extern int	audiotricks_max_concurrent_password_checks;
extern int	audiotricks_password_check_wait;	/* ms */

/* GUC variables of src/keys.c: encrypted API keys */
extern char *audiotricks_key_file;
extern int	audiotricks_aes_backend;

/* Audio history and settings: size limits of user-supplied values */
#define AT_AUDIO_URL_MAX		2048	/* characters */
#define AT_SEARCH_QUERY_MAX		1000	/* characters */
/*
 * Size limits of the user-supplied history and settings values, in bytes of
 * the value without its varlena header (octet_length for text; for jsonb,
 * its binary form), enforced by the tables' CHECK constraints (validate.c).
 */
#define AT_TRANSCRIPT_MAX		(8 * 1024 * 1024)
#define AT_SUMMARY_MAX			(64 * 1024)
#define AT_KEY_MOMENTS_MAX		(256 * 1024)
#define AT_PROCESSING_OPTIONS_MAX (64 * 1024)
#define AT_SETTINGS_JSON_MAX	(16 * 1024)
/* bytes of each text that at_history_tsv parses (history_index.c) */
#define AT_SEARCH_TEXT_MAX		(1024 * 1024)

#endif							/* AUDIOTRICKS_H */
