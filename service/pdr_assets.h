/* pdr_assets.h: the static documents `pdr serve` answers with, compiled into the binary (the
 * machines it runs on may have no internet, and the binary should not depend on its source tree).
 * Sources: service/page.html (GET /) and service/openapi.json (GET /openapi.json); the C file is
 * generated from them by service/gen_assets.py. */
#ifndef PDR_ASSETS_H
#define PDR_ASSETS_H

extern const char pdr_page_html[];    /* the search page: HTML, inline CSS and JS, no external assets */
extern const char pdr_openapi_json[]; /* OpenAPI 3.0 description of the endpoints */

#endif
