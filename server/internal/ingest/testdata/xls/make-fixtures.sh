#!/usr/bin/env bash
# Regenerates the legacy .xls (BIFF8) fixtures read by xls_test.go and
# ../../../jobs/import_xls_test.go. CI does not run it: the committed .xls
# files are what the tests read.
#
# Needs LibreOffice Calc (apt-get install -y --no-install-recommends
# libreoffice-calc-nogui) and Node + npm (for SheetJS, npm package xlsx).
# The workbooks are described as flat OpenDocument (.fods) so every cell's
# type (string, float, date, boolean, formula) is explicit, then converted by
# LibreOffice's own BIFF8 writer; sheetjs.xls comes from SheetJS's writer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

head='<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:automatic-styles>
<number:date-style style:name="N1"><number:year number:style="long"/><number:text>-</number:text><number:month number:style="long"/><number:text>-</number:text><number:day number:style="long"/></number:date-style>
<number:date-style style:name="N2"><number:year number:style="long"/><number:text>-</number:text><number:month number:style="long"/><number:text>-</number:text><number:day number:style="long"/><number:text> </number:text><number:hours number:style="long"/><number:text>:</number:text><number:minutes number:style="long"/><number:text>:</number:text><number:seconds number:style="long"/></number:date-style>
<style:style style:name="ce1" style:family="table-cell" style:data-style-name="N1"/>
<style:style style:name="ce2" style:family="table-cell" style:data-style-name="N2"/>
</office:automatic-styles>'

s() { printf '<table:table-cell office:value-type="string"><text:p>%s</text:p></table:table-cell>' "$1"; }
f() { printf '<table:table-cell office:value-type="float" office:value="%s"/>' "$1"; }
d() { printf '<table:table-cell table:style-name="ce1" office:value-type="date" office:date-value="%s"/>' "$1"; }
ts() { printf '<table:table-cell table:style-name="ce2" office:value-type="date" office:date-value="%s"/>' "$1"; }
b() { printf '<table:table-cell office:value-type="boolean" office:boolean-value="%s"/>' "$1"; }
e() { printf '<table:table-cell/>'; }
fn() { printf '<table:table-cell table:formula="of:=%s" office:value-type="float" office:value="%s"/>' "$1" "$2"; }
# String formulas carry no cached result: LibreOffice then computes it and
# writes it to the .xls (a STRING record after the FORMULA record).
fs() { printf '<table:table-cell table:formula="of:=%s"/>' "$1"; }
fb() { printf '<table:table-cell table:formula="of:=%s" office:value-type="boolean" office:boolean-value="%s"/>' "$1" "$2"; }
row() { printf '<table:table-row>%s</table:table-row>\n' "$*"; }

# book: every cell kind on the first sheet, a second sheet, an empty third.
{
  echo "$head<office:body><office:spreadsheet>"
  echo '<table:table table:name="Data">'
  row "$(s id)$(s name)$(s price)$(s big)$(s day)$(s stamp)$(s ok)$(s twice)$(s label)$(s positive)$(s note)"
  row "$(f 1)$(s apple)$(f 1.25)$(f 9007199254740993)$(d 2024-01-02)$(ts 2024-01-02T10:30:00)$(b true)$(fn '[.A2]*2' 2)$(fs 'CONCATENATE([.B2];&quot;!&quot;)' 'apple!')$(fb '[.C2]&gt;0' true)$(s 'Ελληνικά')"
  row "$(f 2)$(s 'päron 梨')$(f 3)$(f -123456789012)$(d 1999-12-31)$(ts 1970-01-01T00:00:01)$(b false)$(fn '[.A3]*2' 4)$(fs 'CONCATENATE([.B3];&quot;!&quot;)' 'päron 梨!')$(fb '[.C3]&gt;5' false)$(e)"
  row "$(f 3)$(e)$(f 10.5)$(f 0.001)$(e)$(e)$(b true)$(fn '[.A4]*2' 6)$(fs 'CONCATENATE([.B4];&quot;!&quot;)' '!')$(fb '[.C4]&gt;0' true)$(s '日本語のテキスト')"
  echo '</table:table>'
  echo '<table:table table:name="Other Sheet">'
  row "$(s k)$(s v)"
  row "$(s x)$(f 42)"
  echo '</table:table>'
  echo '<table:table table:name="Empty"><table:table-row><table:table-cell/></table:table-row></table:table>'
  echo '</office:spreadsheet></office:body></office:document>'
} >"$work/book.fods"

# long: shared strings long enough that the SST record needs CONTINUE
# records, split inside a string (ASCII and UTF-16 ones).
{
  echo "$head<office:body><office:spreadsheet>"
  echo '<table:table table:name="Long">'
  row "$(s n)$(s text)"
  for i in $(seq 1 40); do
    if (( i % 2 )); then
      txt=$(printf 'row%03d-%0500d' "$i" 0)
    else
      txt=$(printf 'ряд%03d-' "$i"; printf 'Ωμέγα-%.0s' $(seq 1 60))
    fi
    row "$(f "$i")$(s "$txt")"
  done
  echo '</table:table></office:spreadsheet></office:body></office:document>'
} >"$work/long.fods"

# date1904: the 1904 date system (DATEMODE 1).
{
  printf "%s" "$head"
  echo '<office:body><office:spreadsheet>'
  echo '<table:calculation-settings><table:null-date table:date-value="1904-01-01"/></table:calculation-settings>'
  echo '<table:table table:name="Dates">'
  row "$(s day)$(s num)"
  row "$(d 2024-01-02)$(f 1)"
  row "$(d 1904-01-02)$(f 2)"
  echo '</table:table></office:spreadsheet></office:body></office:document>'
} >"$work/date1904.fods"

# A private LibreOffice profile that recalculates formulas on load, so the
# cached results written to the .xls are real (string results included).
mkdir -p "$work/profile/user"
cat >"$work/profile/user/registrymodifications.xcu" <<'XCU'
<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
XCU
(cd "$work" && soffice -env:UserInstallation="file://$work/profile" --headless --norestore --convert-to xls --outdir "$work/out" book.fods long.fods date1904.fods >/dev/null 2>&1)
cp "$work/out/book.xls" "$work/out/long.xls" "$work/out/date1904.xls" "$here/"

# sheetjs: SheetJS's BIFF8 writer (BOOLERR, LABELSST, NUMBER, dates).
mkdir -p "$work/js"
(cd "$work/js" && npm install --silent --no-audit --no-fund xlsx@0.18.5 >/dev/null)
cat >"$work/js/gen.js" <<'JS'
const XLSX = require("xlsx");
const ws = XLSX.utils.aoa_to_sheet([
  ["id", "name", "ok", "day"],
  [1, "alpha", true, new Date(Date.UTC(2024, 0, 2))],
  [2, "βήτα", false, new Date(Date.UTC(2023, 11, 31))],
], { cellDates: true, UTC: true });
const wb = XLSX.utils.book_new();
XLSX.utils.book_append_sheet(wb, ws, "JS");
XLSX.writeFile(wb, process.argv[2], { bookType: "biff8" });
JS
(cd "$work/js" && node gen.js "$here/sheetjs.xls")

# Corrupt variants: truncated inside the directory/FAT area and inside the
# workbook stream.
head -c 1000 "$here/book.xls" >"$here/truncated-header.xls"
size=$(stat -c %s "$here/book.xls")
head -c $((size * 2 / 3)) "$here/book.xls" >"$here/truncated-stream.xls"
ls -l "$here"
